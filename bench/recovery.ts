// Database ready → first successful request through the service, over
// repeated restarts of PostgreSQL (fast shutdown, down for a moment, start)
// while a client sends `GET /purchase-orders/:id` every 20 ms without waiting
// for the previous answer, as independent callers would. "Ready" is when a
// fresh connection that went on to run `SELECT 1` was opened (probed every
// 10 ms). Once per policy: the default (budget and breaker on) and with the
// breaker off.
//
//   npx tsx bench/recovery.ts [restarts=10]
import { type Cluster } from "@prisma-resilience/devdb"
import { applyMigrations, makePrismaClient } from "@prisma-resilience/http/db"
import http from "node:http"
import pg from "pg"
import { fmtMs, get, machine, serviceMain, sleep, startServer, summary, until200, withCluster } from "./support.js"

const restarts = Number(process.argv[2] ?? 10)
const pollEveryMs = 20
const downMs = 500
// Bounds the poller's connections while requests wait out retries.
const maxInFlight = 200

const policies = [
  { name: "default: budget + breaker (DB_CIRCUIT_RESET_MS=2000)", env: {} },
  { name: "breaker off (DB_CIRCUIT_FAILURE_THRESHOLD=0), budget on", env: { DB_CIRCUIT_FAILURE_THRESHOLD: "0" } }
] as const

/**
 * When the first connection attempt that succeeds was started, probing every
 * 10 ms: start() itself probes only every 50 ms, and the service's requests
 * may get through before it notices.
 */
const firstAccepted = async (cluster: Cluster) => {
  const deadline = performance.now() + 30_000
  while (performance.now() < deadline) {
    const attemptAt = performance.now()
    const client = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 1000 })
    client.on("error", () => {})
    try {
      await client.connect()
      await client.query("SELECT 1")
      return attemptAt
    } catch {
      await sleep(10)
    } finally {
      await client.end().catch(() => {})
    }
  }
  throw new Error("PostgreSQL did not accept connections within 30 s")
}

const measure = async (cluster: Cluster, url: string) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight })
  let inFlight = 0
  // Only requests sent after the stop count: one in flight at that moment may still succeed.
  let stoppedAt = Infinity
  let firstSuccessAt: number | undefined
  const poller = setInterval(() => {
    if (inFlight >= maxInFlight) return
    inFlight++
    const sentAt = performance.now()
    get(url, agent).then(
      (response) => {
        if (response.status === 200 && sentAt >= stoppedAt) firstSuccessAt ??= performance.now()
      },
      () => {}
    ).finally(() => inFlight--)
  }, pollEveryMs)
  const recoveries: Array<number> = []
  try {
    for (let i = 0; i < restarts; i++) {
      await sleep(300)
      await cluster.stop("fast")
      stoppedAt = performance.now()
      firstSuccessAt = undefined
      await sleep(downMs)
      const probing = firstAccepted(cluster)
      probing.catch(() => {})
      await cluster.start()
      const readyAt = await probing
      while (firstSuccessAt === undefined && performance.now() - readyAt < 15_000) await sleep(5)
      if (firstSuccessAt === undefined) throw new Error(`no successful request within 15 s of restart ${i + 1}`)
      recoveries.push(Math.max(0, firstSuccessAt - readyAt))
      stoppedAt = Infinity
    }
  } finally {
    clearInterval(poller)
    while (inFlight > 0) await sleep(10)
    agent.destroy()
  }
  return recoveries
}

const main = () =>
  withCluster(async (cluster) => {
    await applyMigrations(cluster.url)
    const prisma = makePrismaClient(cluster.url, { max: 1 })
    const order = await prisma.purchaseOrder.create({ data: { reference: "bench-recovery", totalCents: 1 } })
    await prisma.$disconnect()

    const results: Array<{ name: string; recoveries: Array<number> }> = []
    for (const policy of policies) {
      const server = startServer(serviceMain, { DATABASE_URL: cluster.url, ...policy.env })
      try {
        const base = await server.baseUrl
        await until200(`${base}/health`, { everyMs: 20, timeoutMs: 30_000 })
        const url = `${base}/purchase-orders/${order.id}`
        if ((await get(url)).status !== 200) throw new Error(`GET ${url} failed before any restart`)
        results.push({ name: policy.name, recoveries: await measure(cluster, url) })
      } finally {
        await server.stop()
      }
    }

    console.log(
      `Database ready → first 200 from the service, ${restarts} restarts each (fast shutdown, ${downMs} ms down, start), ` +
        `a request every ${pollEveryMs} ms; ${await machine(cluster)}`
    )
    console.log(`| policy | median | min | max | all (ms) |`)
    console.log(`|---|---|---|---|---|`)
    for (const { name, recoveries } of results) {
      const s = summary(recoveries)
      console.log(
        `| ${name} | ${fmtMs(s.median)} | ${fmtMs(s.min)} | ${fmtMs(s.max)} | ${recoveries.map((r) => r.toFixed(0)).join(", ")} |`
      )
    }
  })

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

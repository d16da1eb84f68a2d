// `GET /purchase-orders/:id` through the service against the same request on
// bench/minimal-server.ts (node:http + the same PrismaClient and pool). Both
// run as child processes against one embedded PostgreSQL; a closed-loop
// keep-alive client in this process loads one server at a time, in rounds
// ordered A B, B A, A B, … so that drift on this shared machine hits both
// alike. Also the peak RSS of each server over the whole run.
//
//   npx tsx bench/http.ts [rounds=3] [roundSeconds=10] [concurrency=16]
import { applyMigrations, makePrismaClient } from "@prisma-resilience/http/db"
import {
  cpuMs,
  fmtMs,
  get,
  load,
  type LoadResult,
  machine,
  minimalServer,
  rss,
  serviceMain,
  startServer,
  summary,
  until200,
  withCluster
} from "./support.js"

const rounds = Number(process.argv[2] ?? 3)
const roundMs = Number(process.argv[3] ?? 10) * 1000
const concurrency = Number(process.argv[4] ?? 16)
const warmupMs = 3000

interface Measured {
  readonly name: string
  readonly pid: number
  readonly url: string
  readonly rounds: Array<LoadResult & { cpuMs: number; rssAfterMiB: number }>
  idleRssMiB: number
}

const main = () =>
  withCluster(async (cluster) => {
    await applyMigrations(cluster.url)
    const prisma = makePrismaClient(cluster.url, { max: 1 })
    const order = await prisma.purchaseOrder.create({ data: { reference: "bench-http", totalCents: 12_345, note: "bench" } })
    await prisma.$disconnect()

    const service = startServer(serviceMain, { DATABASE_URL: cluster.url })
    const minimal = startServer(minimalServer, { DATABASE_URL: cluster.url })
    try {
      const servers: Array<Measured> = []
      for (const [name, server] of [["service", service], ["minimal node:http", minimal]] as const) {
        const base = await server.baseUrl
        if (server === service) await until200(`${base}/health`, { everyMs: 20, timeoutMs: 30_000 })
        const url = `${base}/purchase-orders/${order.id}`
        const first = await get(url)
        if (first.status !== 200 || JSON.parse(first.body).id !== order.id) {
          throw new Error(`${name} answered ${first.status} ${first.body}`)
        }
        servers.push({ name, pid: server.pid, url, rounds: [], idleRssMiB: rss(server.pid).currentMiB })
      }
      const [a, b] = servers as [Measured, Measured]
      // Same bodies from both, so that they do the same work.
      const bodies = await Promise.all(servers.map((s) => get(s.url).then((r) => JSON.parse(r.body))))
      if (JSON.stringify(bodies[0]) !== JSON.stringify(bodies[1])) {
        throw new Error(`different answers: ${JSON.stringify(bodies)}`)
      }

      // JIT, pool and PostgreSQL caches warm before anything counts.
      for (const s of servers) await load(s.url, { concurrency, durationMs: warmupMs })
      for (let round = 0; round < rounds; round++) {
        for (const s of round % 2 === 0 ? [a, b] : [b, a]) {
          const cpuBefore = cpuMs(s.pid)
          const result = await load(s.url, { concurrency, durationMs: roundMs })
          s.rounds.push({ ...result, cpuMs: cpuMs(s.pid) - cpuBefore, rssAfterMiB: rss(s.pid).currentMiB })
          console.error(
            `  round ${round + 1} ${s.name}: ${(result.requests / (result.durationMs / 1000)).toFixed(0)} rps`
          )
        }
      }

      const figures = servers.map((s) => {
        const rps = s.rounds.map((r) => r.requests / (r.durationMs / 1000))
        const latency = summary(s.rounds.flatMap((r) => r.latenciesMs))
        const requests = s.rounds.reduce((sum, r) => sum + r.requests, 0)
        const cpu = s.rounds.reduce((sum, r) => sum + r.cpuMs, 0)
        return {
          name: s.name,
          rps: summary(rps).median,
          perRound: rps.map((x) => x.toFixed(0)).join(" / "),
          latency,
          failures: s.rounds.reduce((sum, r) => sum + r.failures, 0),
          cpuUsPerRequest: (cpu * 1000) / requests,
          idleRssMiB: s.idleRssMiB,
          rssAfter: s.rounds.map((r) => r.rssAfterMiB.toFixed(0)).join(" / "),
          peakRssMiB: rss(s.pid).peakMiB
        }
      })
      const [fa, fb] = figures as [(typeof figures)[0], (typeof figures)[0]]

      console.log(`GET /purchase-orders/:id, ${concurrency} keep-alive connections, ${rounds} rounds × ${roundMs / 1000} s per server, interleaved (after ${warmupMs / 1000} s warm-up each); ${await machine(cluster)}`)
      console.log(`| server | requests/s (median of rounds) | per round | latency median | latency p99 | failures | server CPU per request | RSS before load | RSS after each round | peak RSS |`)
      console.log(`|---|---|---|---|---|---|---|---|---|---|`)
      for (const f of figures) {
        console.log(
          `| ${f.name} | ${f.rps.toFixed(0)} | ${f.perRound} | ${fmtMs(f.latency.median)} | ${fmtMs(f.latency.p99)} | ` +
            `${f.failures} | ${f.cpuUsPerRequest.toFixed(0)} µs | ${f.idleRssMiB.toFixed(0)} MiB | ${f.rssAfter} MiB | ` +
            `${f.peakRssMiB.toFixed(0)} MiB |`
        )
      }
      console.log(
        `| service / minimal | ${(fa.rps / fb.rps).toFixed(2)} | | ${(fa.latency.median / fb.latency.median).toFixed(2)} | ` +
          `${(fa.latency.p99 / fb.latency.p99).toFixed(2)} | | ${(fa.cpuUsPerRequest / fb.cpuUsPerRequest).toFixed(2)} | ` +
          `${(fa.idleRssMiB / fb.idleRssMiB).toFixed(2)} | | ${(fa.peakRssMiB / fb.peakRssMiB).toFixed(2)} |`
      )
    } finally {
      await Promise.all([service.stop(), minimal.stop()])
    }
  })

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

// The service alone under more clients than its pool of 10 connections can
// serve at once, on a healthy database: `GET /purchase-orders/:id` from
// autocannon at 16, 200 and 600 keep-alive connections on loopback (closed
// loop, requests time out after 10 s), default settings of the service. Per
// step: requests/s, latency p50/p99 over all answers, the share of 200 and of
// 503 (and whether the 503s carried Retry-After), the server's CPU per
// request and peak resident set, and from its /metrics, scraped every 500 ms
// during the step, whether `db_circuit_state` ever left 0 (closed) and how
// many attempts the breaker refused and how many retries ran: on a healthy
// database, excess requests should wait within their budget or be shed with
// 503 + Retry-After, never trip the breaker.
//
//   npx tsx bench/overload.ts [stepSeconds=8] [connections=16,200,600]
import { applyMigrations, makePrismaClient } from "@prisma-resilience/http/db"
import os from "node:os"
import {
  countStatuses,
  fmtMs,
  get,
  load,
  machine,
  rss,
  serviceMain,
  sleep,
  startServer,
  summary,
  until200,
  withCluster
} from "./support.js"

const stepMs = Number(process.argv[2] ?? 8) * 1000
const steps = (process.argv[3] ?? "16,200,600").split(",").map(Number)
const warmupMs = 2000
const scrapeEveryMs = 500

if (!(stepMs >= 1000 && steps.length > 0 && steps.every((c) => Number.isInteger(c) && c >= 1 && c <= 1000))) {
  throw new Error("usage: bench/overload.ts [stepSeconds ≥ 1] [connections,… each 1–1000]")
}

/** Prometheus text → the sum of each metric's samples, and the max for gauges we watch. */
const parseMetrics = (text: string) => {
  const sums = new Map<string, number>()
  const maxima = new Map<string, number>()
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line)
    if (!match) continue
    const value = Number(match[2])
    if (!Number.isFinite(value)) continue
    sums.set(match[1]!, (sums.get(match[1]!) ?? 0) + value)
    maxima.set(match[1]!, Math.max(maxima.get(match[1]!) ?? -Infinity, value))
  }
  return { sum: (name: string) => sums.get(name) ?? 0, max: (name: string) => maxima.get(name) ?? -Infinity }
}

const main = () =>
  withCluster(async (cluster) => {
    const loadAtStart = os.loadavg()
    await applyMigrations(cluster.url)
    const prisma = makePrismaClient(cluster.url, { max: 1 })
    await prisma.purchaseOrder.createMany({
      data: Array.from({ length: 1000 }, (_, i) => ({ reference: `bench-overload-${i}`, totalCents: 10_000 + i }))
    })
    const order = await prisma.purchaseOrder.findUniqueOrThrow({ where: { reference: "bench-overload-500" } })
    await prisma.$disconnect()

    const service = startServer(serviceMain, { DATABASE_URL: cluster.url })
    try {
      const base = await service.baseUrl
      await until200(`${base}/health`, { everyMs: 20, timeoutMs: 30_000 })
      const url = `${base}/purchase-orders/${order.id}`
      await until200(url, { everyMs: 20, timeoutMs: 30_000 })
      const scrape = async () => parseMetrics((await get(`${base}/metrics`)).body)

      await load(url, { connections: steps[0]!, durationMs: warmupMs })
      const rows: Array<string> = []
      const summaries: Array<string> = []
      let firstOkRps: number | undefined
      for (const connections of steps) {
        const before = await scrape()
        let circuitMax = before.max("db_circuit_state")
        let poolWaitingMax = 0
        let scrapes = 0
        let scrapeFailures = 0
        let scraping = false
        const onTick = () => {
          if (scraping) return
          scraping = true
          scrape().then(
            (m) => {
              scrapes++
              circuitMax = Math.max(circuitMax, m.max("db_circuit_state"))
              poolWaitingMax = Math.max(poolWaitingMax, m.sum("db_pool_waiting_clients"))
            },
            () => scrapeFailures++
          ).finally(() => (scraping = false))
        }
        const result = await load(url, {
          connections,
          durationMs: stepMs,
          timeoutS: 10,
          pid: service.pid,
          onTick,
          tickMs: scrapeEveryMs
        })
        // Requests still queued in the server finish (within their budget) before the next step.
        for (let waited = 0; scraping && waited < 15_000; waited += 50) await sleep(50)
        await sleep(1000)
        const after = await scrape()
        circuitMax = Math.max(circuitMax, after.max("db_circuit_state"))
        const delta = (name: string) => after.sum(name) - before.sum(name)

        const latency = summary(result.latenciesMs)
        const answered = result.requests
        const ok = countStatuses(result.statuses, (s) => s === 200)
        const unavailable = countStatuses(result.statuses, (s) => s === 503)
        const other = answered - ok - unavailable
        const share = (n: number) => (answered === 0 ? "–" : `${((100 * n) / answered).toFixed(1)} %`)
        const rps = answered / (result.durationMs / 1000)
        const okRps = ok / (result.durationMs / 1000)
        const breaker = circuitMax === -Infinity
          ? "not in /metrics"
          : circuitMax === 0
          ? "closed throughout"
          : `left closed (max ${circuitMax})`
        rows.push(
          `| ${connections} | ${rps.toFixed(0)} | ${okRps.toFixed(0)} | ${fmtMs(latency.median)} | ${fmtMs(latency.p99)} | ` +
            `${fmtMs(latency.max)} | ` +
            `${share(ok)} | ${share(unavailable)} (${result.retryAfter503} with Retry-After) | ${other} | ` +
            `${result.errors - result.timeouts} / ${result.timeouts} | ${((result.cpuMs * 1000) / Math.max(1, answered)).toFixed(0)} µs | ` +
            `${result.peakRssMiB.toFixed(0)} MiB | ${breaker} (${scrapes} scrapes${scrapeFailures ? `, ${scrapeFailures} failed` : ""}) | ` +
            `${delta("db_circuit_rejections_total")} | ${delta("db_query_retries_total")} | ${poolWaitingMax} |`
        )
        firstOkRps ??= okRps
        summaries.push(
          `${connections} connections: ${rps.toFixed(0)} answers/s (${okRps.toFixed(0)} 200/s, ` +
            `${(okRps / firstOkRps).toFixed(2)} × the ${steps[0]}-connection step), p50 ${fmtMs(latency.median)}, ` +
            `p99 ${fmtMs(latency.p99)}, max ${fmtMs(latency.max)}, 200 ${share(ok)}, 503 ${share(unavailable)}` +
            `${unavailable ? ` (${result.retryAfter503} with Retry-After)` : ""}, errors ${result.errors}; breaker ${breaker}`
        )
        console.error(`  ${connections} connections: ${rps.toFixed(0)} req/s, ${share(ok)} 200`)
      }
      const loadAtEnd = os.loadavg()

      console.log(
        `The service alone (bundle, default settings, pool 10) on a healthy database: autocannon on 127.0.0.1, ` +
          `${stepMs / 1000} s per step (after ${warmupMs / 1000} s warm-up), request timeout 10 s, /metrics scraped every ` +
          `${scrapeEveryMs} ms; ${await machine(cluster)}; load average ${loadAtStart[0]!.toFixed(2)} at start, ` +
          `${loadAtEnd[0]!.toFixed(2)} at end (1 min)`
      )
      console.log("")
      console.log(
        `| connections | answers/s | 200/s | latency p50 | latency p99 | latency max | 200 | 503 | other status | conn. errors / timeouts | ` +
          `CPU per answer | peak RSS | db_circuit_state | breaker rejections | retries | max pool waiters |`
      )
      console.log(`|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|`)
      for (const row of rows) console.log(row)
      console.log("")
      for (const line of summaries) console.log(`- ${line}`)
      console.log(`- peak RSS of the service over the whole run, warm-up included: ${rss(service.pid).peakMiB.toFixed(0)} MiB (VmHWM)`)
    } finally {
      await service.stop()
    }
  })

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

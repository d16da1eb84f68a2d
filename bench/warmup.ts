// Process start → first `/health` 200 of the service, against a PostgreSQL that
// is already running and already migrated (DATABASE_URL set, so no embedded
// start): what a restarted or newly scheduled replica takes before a load
// balancer may send it traffic. `/health` is polled every 10 ms from the
// moment the server logs its address. Also its resident set (/proc/<pid>/status
// VmRSS) when first healthy and after 1 s idle.
//
//   npx tsx bench/warmup.ts [starts=5]
import { applyMigrations } from "@prisma-resilience/http/db"
import os from "node:os"
import { fmtMs, machine, rss, serviceMain, sleep, startServer, summary, until200, withCluster } from "./support.js"

const starts = Number(process.argv[2] ?? 5)
const idleMs = 1000
const mib = (x: number) => `${x.toFixed(0)} MiB`

const main = () =>
  withCluster(async (cluster) => {
    await applyMigrations(cluster.url)
    const loadAtStart = os.loadavg()
    const rows: Array<
      { listening: number; healthy: number; ready: number; warmup: number; rssHealthy: number; rssIdle: number }
    > = []
    for (let i = 0; i < starts; i++) {
      const server = startServer(serviceMain, { DATABASE_URL: cluster.url })
      try {
        const base = await server.baseUrl
        const listening = performance.now() - server.startedAt
        const healthy = (await until200(`${base}/health`, { everyMs: 10, timeoutMs: 60_000 })) - server.startedAt
        const rssHealthy = rss(server.pid).currentMiB
        // Logged by main.ts right after the warm-up, with the time measured inside the process.
        const readyLine = /Ready (\d+) ms after start \(database warm-up (\d+) ms\)/
        for (let waited = 0; !server.lines.some((line) => readyLine.test(line)) && waited < 2000; waited += 10) {
          await sleep(10)
        }
        const [, ready, warmup] = readyLine.exec(server.lines.find((line) => readyLine.test(line)) ?? "") ?? []
        await sleep(Math.max(0, server.startedAt + healthy + idleMs - performance.now()))
        const rssIdle = rss(server.pid).currentMiB
        rows.push({ listening, healthy, ready: Number(ready), warmup: Number(warmup), rssHealthy, rssIdle })
      } finally {
        await server.stop()
      }
    }

    const loadAtEnd = os.loadavg()
    console.log(
      `Service start (bundle, as \`npm start\`) against a running, migrated PostgreSQL, ${starts} starts; ` +
        `${await machine(cluster)}; load average ${loadAtStart[0]!.toFixed(2)} at start, ${loadAtEnd[0]!.toFixed(2)} at end (1 min)`
    )
    console.log("")
    console.log(
      `| | process start → listening | process start → first /health 200 | main() → warm-up done (its log) | ` +
        `database warm-up (its log) | RSS when healthy | RSS after ${idleMs / 1000} s idle |`
    )
    console.log(`|---|---|---|---|---|---|---|`)
    const column = (key: keyof (typeof rows)[0]) => summary(rows.map((row) => row[key]))
    const stats = {
      listening: column("listening"),
      healthy: column("healthy"),
      ready: column("ready"),
      warmup: column("warmup"),
      rssHealthy: column("rssHealthy"),
      rssIdle: column("rssIdle")
    }
    for (const stat of ["median", "min", "max"] as const) {
      console.log(
        `| ${stat} | ${fmtMs(stats.listening[stat])} | ${fmtMs(stats.healthy[stat])} | ${fmtMs(stats.ready[stat])} | ` +
          `${fmtMs(stats.warmup[stat])} | ${mib(stats.rssHealthy[stat])} | ${mib(stats.rssIdle[stat])} |`
      )
    }
    console.log("")
    console.log(
      `- start → healthy: median ${fmtMs(stats.healthy.median)}, max ${fmtMs(stats.healthy.max)} (goal ≤ 1 s); ` +
        `idle RSS: median ${mib(stats.rssIdle.median)}, max ${mib(stats.rssIdle.max)} (goal ≤ 150 MiB)`
    )
  })

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

// `GET /purchase-orders/:id` through the service and through five other
// servers that send the same `findUnique` (same PrismaClient factory, same
// pool of 10, same `select`) and answer the same JSON:
//
//   service         the shipped bundle (packages/http/dist/bundle/main.mjs), as `npm start` runs it
//   Effect floor    @effect/platform HttpRouter + Effect.promise(prisma…)   bench/effect-floor-server.ts (Effect 3)
//   Effect 4 floor  effect/http HttpRouter + Effect.promise(prisma…)        packages/http/bench/effect4-floor-server.ts
//   minimal         node:http + Prisma                                       bench/minimal-server.ts
//   Fastify         Fastify + raw Prisma                                     bench/fastify-server.ts
//   Fastify+layer   Fastify + createResilientPrisma (core's Promise adapter) bench/fastify-resilient-server.ts
//   service capped  the same bundle under --max-semi-space-size=4 --max-old-space-size=128
//
// All run at once as child processes against one embedded PostgreSQL; the
// TypeScript servers are bundled with esbuild first, like the service, so
// that none pays for tsx (`--tsx` runs them through tsx instead). autocannon
// in this process loads one server at a time over keep-alive connections on
// loopback, in many short rounds whose order rotates by one each round (and
// runs backwards every other round, which keeps the compared pairs — service
// and floor, Fastify and Fastify+layer — next to each other in most rounds),
// so that drift on this shared machine hits all alike; ratios are taken
// within a round, then the median over rounds. Per server:
// requests/s, latency over all answers, CPU time of the server process per
// request (/proc/<pid>/stat), its resident set before load and sampled every
// 100 ms under load (/proc/<pid>/status).
//
//   npx tsx bench/http.ts [rounds=6] [roundSeconds=3] [connections=16] [--tsx] [--only=fastify,fastifyLayer]
//
// `--only` loads just the named servers (keys: service, floor, minimal,
// fastify, fastifyLayer, serviceCapped), for more rounds of one pair in the
// same time; the summary then prints only the lines whose servers ran.
import { applyMigrations, makePrismaClient } from "@prisma-resilience/http/db"
import os from "node:os"
import {
  bundleServers,
  countStatuses,
  effect4FloorServer,
  effectFloorServer,
  fastifyResilientServer,
  fastifyServer,
  fmtMs,
  get,
  load,
  type LoadResult,
  machine,
  minimalServer,
  rss,
  serviceMain,
  type ServerProcess,
  startServer,
  summary,
  until200,
  withCluster
} from "./support.js"

const positional = process.argv.slice(2).filter((arg) => !arg.startsWith("--"))
const rounds = Number(positional[0] ?? 6)
const roundMs = Number(positional[1] ?? 3) * 1000
const connections = Number(positional[2] ?? 16)
const throughTsx = process.argv.includes("--tsx")
const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice("--only=".length).split(",")
const warmupMs = 2000
const seedRows = 1000
const v8Caps = ["--max-semi-space-size=4", "--max-old-space-size=128"]

if (!(rounds >= 1 && roundMs >= 1000 && connections >= 1 && connections <= 1000)) {
  throw new Error("usage: bench/http.ts [rounds ≥ 1] [roundSeconds ≥ 1] [connections 1–1000] [--tsx]")
}

interface Spec {
  readonly key: "service" | "floor" | "floor4" | "minimal" | "fastify" | "fastifyLayer" | "serviceCapped"
  readonly name: string
  readonly file: string
  readonly nodeArgs?: ReadonlyArray<string>
}

const allSpecs: ReadonlyArray<Spec> = [
  { key: "service", name: "service (bundle, `npm start`)", file: serviceMain },
  { key: "floor", name: "Effect floor: HttpRouter + Effect.promise", file: effectFloorServer },
  { key: "floor4", name: "Effect 4 floor: HttpRouter + Effect.promise", file: effect4FloorServer },
  { key: "minimal", name: "minimal node:http + Prisma", file: minimalServer },
  { key: "fastify", name: "Fastify + raw Prisma", file: fastifyServer },
  { key: "fastifyLayer", name: "Fastify + createResilientPrisma", file: fastifyResilientServer },
  { key: "serviceCapped", name: `service, ${v8Caps.join(" ")}`, file: serviceMain, nodeArgs: v8Caps }
]

const unknownKeys = only?.filter((key) => !allSpecs.some((spec) => spec.key === key)) ?? []
if (unknownKeys.length > 0) {
  throw new Error(`--only: unknown server ${unknownKeys.join(", ")}; known: ${allSpecs.map((s) => s.key).join(", ")}`)
}
const specs = only ? allSpecs.filter((spec) => only.includes(spec.key)) : allSpecs

interface Measured {
  readonly spec: Spec
  readonly server: ServerProcess
  readonly url: string
  readonly idleRssMiB: number
  readonly rounds: Array<LoadResult>
}

const rps = (r: LoadResult) => r.requests / (r.durationMs / 1000)
const mib = (x: number) => `${x.toFixed(0)} MiB`
const us = (x: number) => `${x.toFixed(0)} µs`

const main = async () => {
  const loadAtStart = os.loadavg()
  const startedAt = performance.now()
  const tsFiles = [...new Set(specs.map((s) => s.file).filter((file) => file.endsWith(".ts")))]
  const bundled = throughTsx ? undefined : await bundleServers(tsFiles)
  const fileOf = (spec: Spec) => bundled?.bundles.get(spec.file) ?? spec.file
  try {
    await withCluster(async (cluster) => {
      await applyMigrations(cluster.url)
      const prisma = makePrismaClient(cluster.url, { max: 1 })
      await prisma.purchaseOrder.createMany({
        data: Array.from({ length: seedRows }, (_, i) => ({
          reference: `bench-http-${i}`,
          totalCents: 10_000 + i,
          note: i % 2 === 0 ? "bench" : null
        }))
      })
      const order = await prisma.purchaseOrder.findUniqueOrThrow({ where: { reference: `bench-http-${seedRows / 2}` } })
      await prisma.$disconnect()

      const started = specs.map((spec) => ({
        spec,
        server: startServer(fileOf(spec), { DATABASE_URL: cluster.url }, spec.nodeArgs ? { nodeArgs: spec.nodeArgs } : {})
      }))
      try {
        const servers: Array<Measured> = []
        for (const { spec, server } of started) {
          const base = await server.baseUrl
          if (spec.key === "service" || spec.key === "serviceCapped") {
            await until200(`${base}/health`, { everyMs: 20, timeoutMs: 30_000 })
          }
          const url = `${base}/purchase-orders/${order.id}`
          await until200(url, { everyMs: 20, timeoutMs: 30_000 })
          servers.push({ spec, server, url, idleRssMiB: rss(server.pid).currentMiB, rounds: [] })
        }
        // The same bytes from all, so that they do the same work.
        const bodies = await Promise.all(servers.map((s) => get(s.url).then((r) => JSON.stringify(JSON.parse(r.body)))))
        if (new Set(bodies).size !== 1) {
          throw new Error(`different answers:\n${servers.map((s, i) => `${s.spec.name}: ${bodies[i]}`).join("\n")}`)
        }

        // JIT, pools and PostgreSQL's caches warm before anything counts.
        for (const s of servers) await load(s.url, { connections, durationMs: warmupMs })
        for (let round = 0; round < rounds; round++) {
          const shift = round % servers.length
          const rotated = [...servers.slice(shift), ...servers.slice(0, shift)]
          for (const s of round % 2 === 0 ? rotated : rotated.reverse()) {
            const result = await load(s.url, { connections, durationMs: roundMs, pid: s.server.pid })
            s.rounds.push(result)
            console.error(`  round ${round + 1} ${s.spec.name}: ${rps(result).toFixed(0)} req/s`)
          }
        }
        const loadAtEnd = os.loadavg()

        const figures = new Map(servers.map((s) => {
          const requests = s.rounds.reduce((sum, r) => sum + r.requests, 0)
          const ok = s.rounds.reduce((sum, r) => sum + countStatuses(r.statuses, (status) => status === 200), 0)
          const errors = s.rounds.reduce((sum, r) => sum + r.errors, 0)
          return [s.spec.key, {
            name: s.spec.name,
            rps: s.rounds.map(rps),
            medianRps: summary(s.rounds.map(rps)).median,
            latency: summary(s.rounds.flatMap((r) => r.latenciesMs)),
            failures: requests - ok + errors,
            cpuUs: (s.rounds.reduce((sum, r) => sum + r.cpuMs, 0) * 1000) / requests,
            idleRssMiB: s.idleRssMiB,
            peakRssMiB: Math.max(...s.rounds.map((r) => r.peakRssMiB)),
            hwmMiB: rss(s.server.pid).peakMiB
          }] as const
        }))
        const f = (key: Spec["key"]) => figures.get(key)!
        // Ratios of requests/s within each round (the two ran seconds apart), median over rounds.
        const ratio = (a: Spec["key"], b: Spec["key"]) => {
          const perRound = f(a).rps.map((x, i) => x / f(b).rps[i]!)
          const s = summary(perRound)
          return { median: s.median, min: s.min, max: s.max }
        }
        const fmtRatio = (r: { median: number; min: number; max: number }) =>
          `${r.median.toFixed(3)} (rounds ${r.min.toFixed(3)}–${r.max.toFixed(3)})`

        console.log(
          `GET /purchase-orders/:id, autocannon ${connections} keep-alive connections on 127.0.0.1, ${rounds} rounds × ` +
            `${roundMs / 1000} s per server, order rotating per round, backwards every other round (after ${warmupMs / 1000} s warm-up each); ` +
            `TypeScript servers ${throughTsx ? "through tsx" : "bundled with esbuild like the service"}; ` +
            `${await machine(cluster)}; load average ${loadAtStart[0]!.toFixed(2)} at start, ` +
            `${loadAtEnd[0]!.toFixed(2)} at end (1 min)`
        )
        console.log("")
        console.log(
          `| server | req/s (median of rounds) | per round | latency p50 | latency p99 | failures | CPU per request | ` +
            `RSS before load | peak RSS under load (sampled) | VmHWM |`
        )
        console.log(`|---|---|---|---|---|---|---|---|---|---|`)
        for (const x of figures.values()) {
          console.log(
            `| ${x.name} | ${x.medianRps.toFixed(0)} | ${x.rps.map((v) => v.toFixed(0)).join(" / ")} | ` +
              `${fmtMs(x.latency.median)} | ${fmtMs(x.latency.p99)} | ${x.failures} | ${us(x.cpuUs)} | ` +
              `${mib(x.idleRssMiB)} | ${mib(x.peakRssMiB)} | ${mib(x.hwmMiB)} |`
          )
        }
        console.log("")
        const lat = (key: Spec["key"]) => `${fmtMs(f(key).latency.median)} / ${fmtMs(f(key).latency.p99)}`
        const ran = (...keys: ReadonlyArray<Spec["key"]>) => keys.every((key) => figures.has(key))
        const cpuRatio = (a: Spec["key"], b: Spec["key"]) => (f(a).cpuUs / f(b).cpuUs).toFixed(2)
        // Each line only when all the servers it compares ran (see --only).
        const lines: Array<string | false> = [
          ran("service", "floor") &&
          `service / Effect floor (HttpRouter + Effect.promise), req/s: ${fmtRatio(ratio("service", "floor"))}; goal ≥ 0.95`,
          ran("service", "minimal") && `service / minimal node:http, req/s: ${fmtRatio(ratio("service", "minimal"))}`,
          ran("fastifyLayer", "fastify") &&
          `Fastify + layer / Fastify raw, req/s: ${fmtRatio(ratio("fastifyLayer", "fastify"))}; goal ≥ 0.95`,
          ran("floor", "minimal") && `Effect floor / minimal node:http, req/s: ${fmtRatio(ratio("floor", "minimal"))}`,
          ran("fastify", "minimal") && `Fastify raw / minimal node:http, req/s: ${fmtRatio(ratio("fastify", "minimal"))}`,
          `CPU per request: ${specs.map((s) => `${s.key} ${us(f(s.key).cpuUs)}`).join(", ")}` +
          (ran("service", "floor") ? `; service / floor ${cpuRatio("service", "floor")}` : "") +
          (ran("fastifyLayer", "fastify") ? `; Fastify + layer / Fastify ${cpuRatio("fastifyLayer", "fastify")}` : ""),
          `latency p50 / p99: ${specs.map((s) => `${s.key} ${lat(s.key)}`).join(", ")}` +
          (ran("service", "floor")
            ? `; service / floor ${(f("service").latency.median / f("floor").latency.median).toFixed(2)} / ` +
              `${(f("service").latency.p99 / f("floor").latency.p99).toFixed(2)}`
            : ""),
          `RSS idle / peak: ${specs.map((s) => `${s.key} ${mib(f(s.key).idleRssMiB)} / ${mib(f(s.key).peakRssMiB)}`).join(", ")}` +
          (ran("service", "minimal")
            ? `; service peak / minimal peak ${(f("service").peakRssMiB / f("minimal").peakRssMiB).toFixed(2)} ` +
              `(goal ≤ 1.2, no V8 flags)`
            : ""),
          ran("service", "serviceCapped") &&
          `V8 caps (${v8Caps.join(" ")}): service peak RSS ${mib(f("serviceCapped").peakRssMiB)} vs ` +
            `${mib(f("service").peakRssMiB)} uncapped (${(f("serviceCapped").peakRssMiB / f("service").peakRssMiB).toFixed(2)}); ` +
            `CPU per request ${cpuRatio("serviceCapped", "service")} × uncapped; ` +
            `req/s ${fmtRatio(ratio("serviceCapped", "service"))} of uncapped`,
          `machine load average (1 min): ${loadAtStart[0]!.toFixed(2)} at start, ${loadAtEnd[0]!.toFixed(2)} at end, ` +
          `${os.cpus().length} cores; ${((performance.now() - startedAt) / 1000).toFixed(0)} s in all`
        ]
        for (const line of lines) if (line) console.log(`- ${line}`)
      } finally {
        await Promise.all(started.map(({ server }) => server.stop()))
      }
    })
  } finally {
    await bundled?.remove()
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

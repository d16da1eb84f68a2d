// Success-path cost of Database.query against raw Prisma and raw pg: the same
// findUnique by primary key, interleaved call by call, against an embedded
// PostgreSQL on loopback. Prints medians, p99 and ratios.
//
//   npx tsx bench/query-overhead.ts [calls=3000]
import { Database, RetryPolicy } from "@prisma-resilience/core"
import { applyMigrations, makePrismaClient, poolStats, type PrismaClient, startCluster } from "@prisma-resilience/devdb"
import { Effect, Layer, Logger, LogLevel } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"

const calls = Number(process.argv[2] ?? 3000)
const warmupCalls = 500

const quantile = (sorted: ReadonlyArray<number>, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
const summary = (samples: Array<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) }
}
const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`

const main = async () => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "bench-")) })
  try {
    await applyMigrations(cluster.url)
    const raw = new pg.Pool({ connectionString: cluster.url, max: 1, connectionTimeoutMillis: 2000 })
    raw.on("error", () => {})
    const prisma = makePrismaClient(cluster.url, { max: 1 })
    const order = await prisma.purchaseOrder.create({ data: { reference: "bench", totalCents: 1 } })
    const Db = Database.forClient<PrismaClient>()
    // Both paths share one client (one pool, one query cache), so the
    // difference is the layer alone.
    const layer = Database.layer<PrismaClient>({
      client: () => prisma,
      poolStats,
      retry: RetryPolicy.defaults
    })

    const samples = { pg: [] as Array<number>, prisma: [] as Array<number>, layer: [] as Array<number> }
    const program = Effect.gen(function*() {
      const variants = {
        pg: Effect.promise(() => raw.query("SELECT * FROM purchase_order WHERE id = $1", [order.id])),
        prisma: Effect.promise(() => prisma.purchaseOrder.findUnique({ where: { id: order.id } })),
        layer: Db.query((c) => c.purchaseOrder.findUnique({ where: { id: order.id } }), {
          operation: "purchaseOrder.findUnique"
        })
      } as const
      const names = Object.keys(variants) as Array<keyof typeof variants>
      for (let i = 0; i < warmupCalls + calls; i++) {
        // Rotate the order so that no variant always runs first.
        for (let k = 0; k < names.length; k++) {
          const name = names[(i + k) % names.length]!
          const started = performance.now()
          yield* variants[name]
          if (i >= warmupCalls) samples[name].push(performance.now() - started)
        }
      }
    })
    await Effect.runPromise(
      program.pipe(
        Effect.provide(layer.pipe(Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)))),
        Logger.withMinimumLogLevel(LogLevel.Warning)
      )
    )
    const pgS = summary(samples.pg)
    const prismaS = summary(samples.prisma)
    const layerS = summary(samples.layer)
    console.log(`findUnique by primary key, ${calls} interleaved calls each (after ${warmupCalls} warm-up), Node ${process.version}`)
    console.log(`| path | median | p99 | median vs raw Prisma |`)
    console.log(`|---|---|---|---|`)
    console.log(`| raw pg | ${us(pgS.median)} | ${us(pgS.p99)} | ${(pgS.median / prismaS.median).toFixed(3)} |`)
    console.log(`| raw Prisma | ${us(prismaS.median)} | ${us(prismaS.p99)} | 1.000 |`)
    console.log(`| Database.query | ${us(layerS.median)} | ${us(layerS.p99)} | ${(layerS.median / prismaS.median).toFixed(3)} |`)
    await raw.end()
  } finally {
    await cluster.destroy()
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

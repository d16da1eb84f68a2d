// Success-path cost of core-effect3's Database.query (Effect 3; the Effect 4
// core's is packages/core/bench/query-overhead.ts) against raw Prisma and raw pg: the same
// findUnique by primary key against an embedded PostgreSQL on loopback. The
// paths that run inside one fiber are interleaved call by call; raw Prisma
// with a plain `await` (no Effect at all) alternates with them in blocks of
// 10 rounds. Prints medians, p99 and ratios.
//
//   npx tsx bench/query-overhead.ts [calls=5000]
import { Database, type DatabaseTag, RetryPolicy } from "@prisma-resilience/core-effect3"
import { startCluster } from "@prisma-resilience/devdb"
import { applyMigrations, makePrismaClient, poolStats, type PrismaClient } from "@prisma-resilience/http/db"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { machine, summary } from "./support.js"

const blockSize = 10
const calls = Math.ceil(Number(process.argv[2] ?? 5000) / blockSize) * blockSize
const warmupCalls = 500

const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`

const main = async () => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "bench-")) })
  try {
    await applyMigrations(cluster.url)
    const raw = new pg.Pool({ connectionString: cluster.url, max: 1, connectionTimeoutMillis: 2000 })
    raw.on("error", () => {})
    const prisma = makePrismaClient(cluster.url, { max: 1 })
    const order = await prisma.purchaseOrder.create({ data: { reference: "bench", totalCents: 1 } })
    // The default `Database`, its accessors typed for this client.
    const Db = Database as unknown as DatabaseTag<Database, "@prisma-resilience/core-effect3/Database", PrismaClient>
    // Every Prisma path shares one client (one pool, one query cache), so the
    // differences are the layer and Effect alone.
    const layer = Database.layer({
      client: () => prisma,
      poolStats,
      retry: RetryPolicy.defaults
    })

    const samples = {
      pg: [] as Array<number>,
      prisma: [] as Array<number>,
      layer: [] as Array<number>,
      recorded: [] as Array<number>,
      await: [] as Array<number>
    }
    const variants = {
      pg: Effect.promise(() => raw.query("SELECT * FROM purchase_order WHERE id = $1", [order.id])),
      prisma: Effect.promise(() => prisma.purchaseOrder.findUnique({ where: { id: order.id } })),
      layer: Db.query((c) => c.purchaseOrder.findUnique({ where: { id: order.id } }), {
        operation: "purchaseOrder.findUnique"
      }),
      // How the service calls it: the operation name recorded from the call.
      recorded: Db.query((c) => c.purchaseOrder.findUnique({ where: { id: order.id } }))
    } as const
    const names = Object.keys(variants) as Array<keyof typeof variants>
    const fiberBlock = (first: number, record: boolean) =>
      Effect.gen(function*() {
        for (let i = first; i < first + blockSize; i++) {
          // Rotate the order so that no variant always runs first.
          for (let k = 0; k < names.length; k++) {
            const name = names[(i + k) % names.length]!
            const started = performance.now()
            yield* variants[name]
            if (record) samples[name].push(performance.now() - started)
          }
        }
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
    // The same calls in the same order as the fiber block, without Effect:
    // alternating between the two connections costs tens of µs per call on
    // its own, so only the same pattern makes the Prisma figures comparable.
    const plain = {
      pg: () => raw.query("SELECT * FROM purchase_order WHERE id = $1", [order.id]),
      prisma: () => prisma.purchaseOrder.findUnique({ where: { id: order.id } }),
      layer: () => prisma.purchaseOrder.findUnique({ where: { id: order.id } }),
      recorded: () => prisma.purchaseOrder.findUnique({ where: { id: order.id } })
    } as const
    const awaitBlock = async (first: number, record: boolean) => {
      for (let i = first; i < first + blockSize; i++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(i + k) % names.length]!
          const started = performance.now()
          await plain[name]()
          if (record && name === "prisma") samples.await.push(performance.now() - started)
        }
      }
    }
    const runtime = ManagedRuntime.make(layer.pipe(Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))))
    try {
      for (let first = 0; first < warmupCalls + calls; first += blockSize) {
        const record = first >= warmupCalls
        if (first % (2 * blockSize) === 0) {
          await runtime.runPromise(fiberBlock(first, record))
          await awaitBlock(first, record)
        } else {
          await awaitBlock(first, record)
          await runtime.runPromise(fiberBlock(first, record))
        }
      }
    } finally {
      await runtime.dispose()
    }
    const pgS = summary(samples.pg)
    const prismaS = summary(samples.prisma)
    const awaitS = summary(samples.await)
    const layerS = summary(samples.layer)
    const recordedS = summary(samples.recorded)
    console.log(`findUnique by primary key, ${calls} interleaved calls each (after ${warmupCalls} warm-up); ${await machine(cluster)}`)
    console.log(`| path | median | p99 | median vs raw Prisma |`)
    console.log(`|---|---|---|---|`)
    console.log(`| raw pg | ${us(pgS.median)} | ${us(pgS.p99)} | ${(pgS.median / prismaS.median).toFixed(3)} |`)
    console.log(`| raw Prisma, plain await | ${us(awaitS.median)} | ${us(awaitS.p99)} | ${(awaitS.median / prismaS.median).toFixed(3)} |`)
    console.log(`| raw Prisma | ${us(prismaS.median)} | ${us(prismaS.p99)} | 1.000 |`)
    console.log(`| Database.query, operation named | ${us(layerS.median)} | ${us(layerS.p99)} | ${(layerS.median / prismaS.median).toFixed(3)} |`)
    console.log(`| Database.query, operation recorded | ${us(recordedS.median)} | ${us(recordedS.p99)} | ${(recordedS.median / prismaS.median).toFixed(3)} |`)
    await raw.end()
  } finally {
    await cluster.destroy()
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

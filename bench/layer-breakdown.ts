// Where the layer's cost goes once real I/O is involved: the same findUnique
// through successively more of Database.query, interleaved call by call, plus
// two Effect context operations the HTTP service performs per request.
//
//   npx tsx bench/layer-breakdown.ts [calls=4000]
import { Database, type DatabaseTag, RetryPolicy } from "@prisma-resilience/core-effect3"
import { makeTimer, QueryHealth } from "@prisma-resilience/kernel"
import { startCluster } from "@prisma-resilience/devdb"
import { applyMigrations, makePrismaClient, type PrismaClient } from "@prisma-resilience/http/db"
import { Clock, Effect, Logger, LogLevel } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { awaitWithTimeout, guardedAttempt } from "../packages/core-effect3/src/internal/attempt.js"
import { meteredBreaker, meteredBudget } from "../packages/core-effect3/src/internal/meteredGuards.js"

const calls = Number(process.argv[2] ?? 4000)
const warmupCalls = 500

const main = async () => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "bench-breakdown-")) })
  try {
    await applyMigrations(cluster.url)
    const prisma = makePrismaClient(cluster.url, { max: 1 })
    const order = await prisma.purchaseOrder.create({ data: { reference: "breakdown", totalCents: 1 } })
    // The default `Database`, its accessors typed for this client.
    const Db = Database as unknown as DatabaseTag<Database, "@prisma-resilience/core-effect3/Database", PrismaClient>
    const layer = Db.layer({ client: () => prisma, retry: RetryPolicy.defaults })
    const guard = { budget: meteredBudget(), breaker: meteredBreaker(), clock: Clock.make(), timer: makeTimer(() => performance.now()), overloaded: () => false, queryHealth: QueryHealth.make(), generation: 0 }
    const find = () => prisma.purchaseOrder.findUnique({ where: { id: order.id } })
    const operation = "purchaseOrder.findUnique"
    const samples = new Map<string, Array<number>>()

    const program = Effect.gen(function*() {
      const db = yield* Database
      const variants: Record<string, () => Effect.Effect<unknown, unknown, Database>> = {
        "Effect.promise (baseline)": () => Effect.promise(find),
        "+ attempt timeout (awaitWithTimeout)": () => Effect.suspend(() => awaitWithTimeout(guard.timer, find(), 2000, operation, 1)),
        "+ metrics, budget, breaker (guardedAttempt)": () =>
          Effect.suspend(() => guardedAttempt(guard, find, 2000, operation, 1, performance.now())),
        "db.query (the service method)": () => db.query(find, { operation }),
        "Db.query (accessor: reads the Database tag)": () => Db.query(find, { operation }),
        "baseline + Effect.provideService": () => Effect.promise(find).pipe(Effect.provideService(Database, db)),
        "baseline + Effect.locally": () => Effect.promise(find).pipe(Effect.locally(RetryPolicy.currentDeadline, 1))
      }
      const names = Object.keys(variants)
      for (const name of names) samples.set(name, [])
      for (let i = 0; i < warmupCalls + calls; i++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(i + k) % names.length]!
          const started = performance.now()
          yield* variants[name]!()
          if (i >= warmupCalls) samples.get(name)!.push(performance.now() - started)
        }
      }
    })
    await Effect.runPromise(program.pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Warning)))

    const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[values.length >> 1]!
    const base = median(samples.get("Effect.promise (baseline)")!)
    console.log(`findUnique by primary key, ${calls} interleaved calls each, Node ${process.version}`)
    console.log("| path | median | vs baseline |")
    console.log("|---|---|---|")
    for (const [name, values] of samples) {
      const m = median(values)
      console.log(`| ${name} | ${(m * 1000).toFixed(1)} µs | ${(m / base).toFixed(3)} |`)
    }
  } finally {
    await cluster.destroy()
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

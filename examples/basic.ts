/**
 * Using @prisma-resilience/core in your own program: your Prisma client (here
 * the purchase-order one; import your own generated `PrismaClient`), a
 * `Database` layer that warms it up, queries and a transaction that go through
 * the one retry layer, and `health`, which cannot run before warm-up.
 *
 *   DATABASE_URL=postgresql://… node --import tsx examples/basic.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { PrismaPg } from "@prisma/adapter-pg"
import { Database, health } from "@prisma-resilience/core"
import { PrismaClient } from "@prisma-resilience/devdb"
import { Config, Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"

/** Accessors typed for this client: no annotations needed in the query functions. */
const Db = Database.forClient<PrismaClient>()

/**
 * The warm-up as a layer: connects and probes with `SELECT 1` before anything
 * can use `Database`. Retry, timeout and pool settings come from the
 * environment (DB_RETRY_DELAYS_MS, DB_REQUEST_BUDGET_MS, DB_POOL_MAX, …);
 * `pool` carries the pool settings, including a connect timeout.
 */
export const DatabaseLive = Layer.unwrapEffect(
  Effect.map(Config.redacted("DATABASE_URL"), (url) =>
    Db.layer({
      client: (pool) => new PrismaClient({ adapter: new PrismaPg({ connectionString: Redacted.value(url), ...pool }) })
    }))
)

export const program = Effect.gen(function*() {
  const report = yield* health
  yield* Effect.logInfo(`database healthy: probe ${report.latencyMs} ms, warm-up ${report.warmupMs} ms`)

  // A single statement: retried on connection errors before it was sent, not
  // after ambiguous ones, because a plain create is not idempotent.
  const order = yield* Db.query((c) =>
    c.purchaseOrder.create({ data: { reference: `EXAMPLE-${randomUUID()}`, totalCents: 10_000 } })
  )

  // A transaction is run again as a whole on serialization failures and deadlocks.
  const discounted = yield* Db.transaction(async (tx) => {
    const current = await tx.purchaseOrder.findUniqueOrThrow({ where: { id: order.id } })
    return tx.purchaseOrder.update({
      where: { id: order.id },
      data: { totalCents: Math.round(current.totalCents * 0.9), note: "10 % off" }
    })
  }, { isolationLevel: "Serializable" })

  const count = yield* Db.query((c) => c.purchaseOrder.count())
  yield* Effect.logInfo(`order ${discounted.reference}: ${discounted.totalCents} cents; ${count} order(s) in total`)
  return { report, order: discounted, count }
})

export const main = program.pipe(Effect.provide(DatabaseLive))

if (process.argv[1] === fileURLToPath(import.meta.url)) NodeRuntime.runMain(main)

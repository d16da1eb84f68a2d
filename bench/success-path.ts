// Per-call cost of the layer's success path with no I/O: each variant awaits an
// already-resolved promise, 20 000 calls in one fiber, two measured rounds.
//
//   npx tsx bench/success-path.ts
import { Database, type PrismaClientLike, RetryPolicy } from "@prisma-resilience/core-effect3"
import { Effect, Logger, LogLevel } from "effect"

const N = 20_000
const fake = {
  $connect: async () => {},
  $disconnect: async () => {},
  $queryRaw: async () => [1],
  $transaction: async () => 1,
  order: { findUnique: () => Promise.resolve(1) }
}
const layer = Database.layer({ client: () => fake as PrismaClientLike, retry: RetryPolicy.defaults })

const program = Effect.gen(function*() {
  const db = yield* Database
  const variants: Record<string, () => Effect.Effect<unknown, unknown>> = {
    "Effect.promise": () => Effect.promise(() => Promise.resolve(1)),
    "Effect.tryPromise": () => Effect.tryPromise(() => Promise.resolve(1)),
    "RetryPolicy.retry": () =>
      RetryPolicy.retry(() => Effect.promise(() => Promise.resolve(1)), {
        config: RetryPolicy.defaults,
        operation: "order.findUnique",
        kind: "read"
      }),
    "query, operation named": () => db.query(() => Promise.resolve(1), { operation: "order.findUnique" }),
    "query, operation recorded": () => db.query((c: typeof fake) => c.order.findUnique())
  }
  const totals = new Map(Object.keys(variants).map((name) => [name, 0]))
  for (let round = 0; round < 3; round++) {
    for (const [name, variant] of Object.entries(variants)) {
      const started = performance.now()
      for (let i = 0; i < N; i++) yield* variant()
      if (round > 0) totals.set(name, totals.get(name)! + performance.now() - started)
    }
  }
  console.log(`success path, ${N} calls × 2 rounds, Node ${process.version}`)
  for (const [name, total] of totals) console.log(`${name.padEnd(28)} ${((total / (2 * N)) * 1000).toFixed(2)} µs/call`)
})

Effect.runPromise(program.pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Warning)))

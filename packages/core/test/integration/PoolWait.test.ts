// A query that cannot get a connection because its own pool is full says
// nothing about the database: it must neither open the circuit nor drain the
// retry budget, and is not retried into the same full queue (real PostgreSQL,
// a pool of one connection held by a slow query).
import { Database } from "@prisma-resilience/core"
import { expect, layer } from "../support/vitest.js"
import { Duration, Effect, Result, Fiber } from "effect"
import { inject } from "vitest"
import { captureLogs, databaseLayer, Db } from "../support/helpers.js"

const url = inject("databaseUrl")

layer(
  databaseLayer(url, {
    pool: { max: 1, connectionTimeoutMillis: 200 },
    circuitBreaker: { failureThreshold: 2, resetTimeoutMs: 60_000 },
    retryBudget: { maxTokens: 4, tokenRatio: 0.1 }
  }),
  { excludeTestServices: true }
)("a full pool", (it) => {
  it.effect("fails fast with a pool-wait TimeoutError, not retried, breaker closed, budget untouched", () =>
    Effect.gen(function*() {
      const db = yield* Database
      const tokens = yield* db.retryBudgetTokens
      // Holds the pool's only connection for a second and a half.
      const hog = yield* Db.query((c) => c.$queryRaw`SELECT 1 AS held FROM pg_sleep(1.5)`).pipe(Effect.forkChild)
      yield* Effect.sleep(Duration.millis(100))
      const logs = captureLogs()
      const waits = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Db.query((c) => c.purchaseOrder.findMany({ take: 1 })).pipe(Effect.result),
        { concurrency: 5 }
      ).pipe(Effect.provide(logs.layer))
      for (const result of waits) {
        expect(Result.isFailure(result) && result.failure._tag).toBe("TimeoutError")
        expect(Result.isFailure(result) && result.failure.code).toBe("POOL_ACQUIRE_TIMEOUT")
        expect(Result.isFailure(result) && result.failure.attempt).toBe(1)
      }
      expect(logs.lines.every((line) => line.endsWith("not retried: the connection pool is full; another attempt would queue behind the same connections")))
        .toBe(true)
      expect((yield* db.circuit).state).toBe("closed")
      expect(yield* db.retryBudgetTokens).toBe(tokens)
      yield* Fiber.join(hog)
      // The database was fine all along.
      expect(yield* Db.query((c) => c.purchaseOrder.findMany({ take: 1 })).pipe(Effect.map((rows) => rows.length)))
        .toBeLessThanOrEqual(1)
    }))
})

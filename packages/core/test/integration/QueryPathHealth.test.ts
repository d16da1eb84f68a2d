// Health hears what the queries say: `SELECT 1` passes while real queries wait
// on a lock or hit a missing table, and health must not (real PostgreSQL).
import { Database, health } from "@prisma-resilience/core"
import { expect, layer } from "../support/vitest.js"
import { Duration, Effect, Result, Fiber } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { databaseLayer, Db } from "../support/helpers.js"

const url = inject("databaseUrl")

const reason = Effect.map(Effect.result(health), (result) => (Result.isFailure(result) ? result.failure.reason : "pass"))

layer(databaseLayer(url, { retry: { delaysMs: [], attemptTimeoutMs: 4000 } }), { excludeTestServices: true })(
  "health and the query path",
  (it) => {
    it.effect("fails degraded while queries wait on a lock, and passes once they finish", () =>
      Effect.gen(function*() {
        expect(yield* reason).toBe("pass")
        const locker = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
        yield* Effect.tryPromise(() => locker.connect())
        yield* Effect.addFinalizer(() => Effect.promise(() => locker.end().catch(() => {})))
        yield* Effect.tryPromise(() => locker.query("BEGIN"))
        yield* Effect.tryPromise(() => locker.query("LOCK TABLE purchase_order IN ACCESS EXCLUSIVE MODE"))
        const blocked = yield* Db.query((c) => c.purchaseOrder.findMany({ take: 1 })).pipe(Effect.forkChild)
        yield* Effect.sleep(Duration.millis(300))
        // SELECT 1 still answers: only the queries' own progress tells.
        expect(yield* Effect.map((yield* Database).ping(), (ms) => ms >= 0)).toBe(true)
        expect(yield* reason).toBe("pass")
        yield* Effect.sleep(Duration.millis(1000))
        const during = yield* Effect.result(health)
        expect(Result.isFailure(during) && during.failure.reason).toBe("degraded")
        expect(Result.isFailure(during) && during.failure.message).toMatch(/stalled: 1 query attempt\(s\) in flight and none finished/)
        yield* Effect.tryPromise(() => locker.query("COMMIT"))
        yield* Fiber.join(blocked)
        expect(yield* reason).toBe("pass")
      }).pipe(Effect.scoped))

    it.effect("fails degraded after repeated failures of a missing table, passes after a success", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 3; i++) {
          const result = yield* Db.query((c) => c.$queryRaw`SELECT * FROM no_such_table`).pipe(Effect.result)
          expect(Result.isFailure(result) && result.failure.code).toMatch(/42P01|P2010/)
        }
        const after = yield* Effect.result(health)
        expect(Result.isFailure(after) && after.failure.reason).toBe("degraded")
        expect(Result.isFailure(after) && after.failure.message).toMatch(/failing: the last 3 query attempts failed/)
        yield* Db.query((c) => c.purchaseOrder.count())
        expect(yield* reason).toBe("pass")
      }))
  }
)

// What a query may do after a failure depends on what it is, never on what it
// is called, and every attempt settles with the breaker whatever its query
// function does (TestClock, a stand-in client: no database involved).
import { Database, health, type PoolSettings, type PrismaClientLike, RetryBudget, RetryPolicy } from "@prisma-resilience/core"
import { describe, expect, it } from "./support/vitest.js"
import { Effect, Result, Fiber } from "effect"
import * as TestClock from "effect/testing/TestClock"

const pool: PoolSettings = { max: 1, connectionTimeoutMillis: 100, idleTimeoutMillis: 100 }
const warmup = { timeoutMs: 1000, attemptTimeoutMs: 1000, backoffMs: 10, backoffMaxMs: 10, healthTimeoutMs: 100, shutdownTimeoutMs: 100 }

// 57P01 admin_shutdown: the backend was terminated mid-query, outcome unknown.
const terminated = () => Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" })
const refused = () => Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })

/** A client with one model whose lazy calls fail `failures` times with `error`, then answer. */
const stand = (failures: number, error: () => Error) => {
  let calls = 0
  const call = (): PromiseLike<string> => ({
    then: (onFulfilled, onRejected) => {
      calls++
      return (calls <= failures ? Promise.reject(error()) : Promise.resolve("row")).then(onFulfilled, onRejected)
    }
  })
  const client = {
    $connect: () => Promise.resolve(),
    $disconnect: () => Promise.resolve(),
    $queryRaw: () => Promise.resolve([1]),
    $transaction: () => Promise.reject(new Error("unused")),
    order: { findUnique: call, create: call }
  }
  return { client, sent: () => calls }
}
type Stand = ReturnType<typeof stand>["client"]

const layerFor = (client: PrismaClientLike, failureThreshold = 5) =>
  Database.layer({
    client: () => client,
    pool,
    warmup,
    retry: RetryPolicy.defaults,
    retryBudget: RetryBudget.defaults,
    // Exact resets: the test steps the TestClock by the reset interval.
    circuitBreaker: { failureThreshold, resetTimeoutMs: 100, resetJitter: 0 }
  })

describe("Database.query semantics", () => {
  it.effect("a read named by the caller is still a read: retried after an ambiguous error", () =>
    Effect.gen(function*() {
      const s = stand(1, terminated)
      const result = yield* Effect.gen(function*() {
        const fiber = yield* Database.query((c: Stand) => c.order.findUnique(), { operation: "orders.byId" }).pipe(
          Effect.forkChild
        )
        yield* TestClock.adjust(500)
        return yield* Fiber.join(fiber)
      }).pipe(Effect.provide(layerFor(s.client)))
      expect(result).toBe("row")
      expect(s.sent()).toBe(2)
    }))

  it.effect("a write named like a read is still a write: not retried after an ambiguous error", () =>
    Effect.gen(function*() {
      const s = stand(1, terminated)
      const result = yield* Database.query((c: Stand) => c.order.create(), { operation: "orders.findOne" }).pipe(
        Effect.provide(layerFor(s.client)),
        Effect.result
      )
      expect(Result.isFailure(result) && result.failure._tag).toBe("ConnectionError")
      expect(s.sent()).toBe(1)
    }))

  it.effect("a query function that throws on a retry fails typed and settles the breaker's probe", () =>
    Effect.gen(function*() {
      const s = stand(1, refused)
      let calls = 0
      // Attempt 1 is refused and opens the circuit (threshold 1); the retry,
      // 500 ms later, is the half-open probe, and its query function throws.
      const flaky = (c: Stand) => {
        calls++
        if (calls === 2) throw new TypeError("cannot build the query")
        return c.order.findUnique()
      }
      yield* Effect.gen(function*() {
        const fiber = yield* Database.query(flaky).pipe(Effect.result, Effect.forkChild)
        yield* TestClock.adjust(500)
        const result = yield* Fiber.join(fiber)
        expect(Result.isFailure(result) && result.failure._tag).toBe("QueryError")
        // Not stuck half-open: the next query is let through and answered.
        expect(yield* Database.query((c: Stand) => c.order.findUnique())).toBe("row")
        expect((yield* health).status).toBe("pass")
      }).pipe(Effect.provide(layerFor(s.client, 1)))
      expect(s.sent()).toBe(2)
    }))

  it.effect("health fails while the breaker is half-open, with its probe in flight", () =>
    Effect.gen(function*() {
      let release: ((value: string) => void) | undefined
      const s = stand(1, refused)
      const hanging = (): PromiseLike<string> => new Promise<string>((resolve) => (release = resolve))
      yield* Effect.gen(function*() {
        yield* Database.query((c: Stand) => c.order.findUnique(), { retry: { delaysMs: [] } }).pipe(Effect.result)
        yield* TestClock.adjust(100)
        const probe = yield* Database.query((_: Stand) => hanging()).pipe(Effect.forkChild)
        yield* Effect.yieldNow
        const during = yield* health.pipe(Effect.result)
        expect(Result.isFailure(during) && during.failure.reason).toBe("circuit_open")
        release?.("row")
        expect(yield* Fiber.join(probe)).toBe("row")
        expect((yield* health).status).toBe("pass")
      }).pipe(Effect.provide(layerFor(s.client, 1)))
    }))

  it.effect("reads the client's method once per query: Prisma builds its model methods anew on every read", () =>
    Effect.gen(function*() {
      const s = stand(0, terminated)
      let reads = 0
      const findUnique = s.client.order.findUnique
      const order = Object.defineProperty({ create: s.client.order.create }, "findUnique", {
        get: () => {
          reads++
          return findUnique
        }
      }) as Stand["order"]
      const client = { ...s.client, order }
      const readsPerQuery = yield* Effect.gen(function*() {
        // The first query also reads it to learn that it is a method.
        yield* Database.query((c: Stand) => c.order.findUnique())
        const before = reads
        for (let i = 0; i < 3; i++) yield* Database.query((c: Stand) => c.order.findUnique())
        return (reads - before) / 3
      }).pipe(Effect.provide(layerFor(client)))
      expect(s.sent()).toBe(4)
      expect(readsPerQuery).toBe(1)
    }))
})

// One clock per Database: a layer built under TestClock times its attempts,
// its retry delays and the request budget in test time. The attempt timer's
// sweeper still ticks every 25 ms of real time, so each step adjusts the
// TestClock and then lets real milliseconds pass, never seconds.
import { Database, type PoolSettings, RetryBudget, RetryPolicy } from "@prisma-resilience/core"
import { describe, expect, it } from "./support/vitest.js"
import { Effect, Fiber, Option } from "effect"
import * as TestClock from "effect/testing/TestClock"

const pool: PoolSettings = { max: 1, connectionTimeoutMillis: 100, idleTimeoutMillis: 100 }
const warmup = { timeoutMs: 1000, attemptTimeoutMs: 1000, backoffMs: 10, backoffMaxMs: 10, healthTimeoutMs: 100, shutdownTimeoutMs: 100 }
// attempt 2000 ms, retries after 500 ms and 1000 ms
const retry = { ...RetryPolicy.defaults, delaysMs: [500, 1000], attemptTimeoutMs: 2000, jitter: false }

/** A client that warms up at once and whose reads never settle. */
const hanging = () => {
  let sent = 0
  const client = {
    $connect: () => Promise.resolve(),
    $disconnect: () => Promise.resolve(),
    $queryRaw: () => Promise.resolve([1]),
    $transaction: () => Promise.reject(new Error("unused")),
    order: {
      findUnique: (): Promise<string> => {
        sent++
        return new Promise<string>(() => {})
      }
    }
  }
  return { client, sent: () => sent }
}
type Hanging = ReturnType<typeof hanging>["client"]

const layerFor = (client: Hanging) =>
  Database.layer({
    client: () => client,
    pool,
    warmup,
    retry,
    retryBudget: RetryBudget.defaults,
    circuitBreaker: { failureThreshold: 100, resetTimeoutMs: 100, resetJitter: 0 }
  })

/** Real time passing (the sweeper's ticks), not test time. */
const realWait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Waits in real time (at most 2 s) until the fiber sleeps until `at` on the TestClock. */
const sleepingUntil = (at: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let waited = 0; waited < 2000; waited += 5) {
      // Effect 4 keeps the TestClock's pending sleeps private: wait until the
      // clock's time plus its earliest sleep reaches `at` cannot be asked, so
      // give the fiber real time to reach its sleep.
      if (waited >= 50) return
      yield* realWait(5)
    }
    throw new Error(`no sleep until ${at} on the TestClock`)
  })

/** Waits in real time (at most 2 s) until `n` attempts were sent. */
const sentReaches = (h: ReturnType<typeof hanging>, n: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let waited = 0; waited < 2000 && h.sent() < n; waited += 5) yield* realWait(5)
    expect(h.sent()).toBe(n)
  })

const realMillis = Effect.sync(() => performance.now())

describe("one clock per Database (TestClock)", () => {
  it.effect("an attempt that never settles times out after the attempt timeout of test time", () =>
    Effect.gen(function*() {
      const h = hanging()
      const startedReal = yield* realMillis
      const error = yield* Effect.gen(function*() {
        const fiber = yield* Database.query((c: Hanging) => c.order.findUnique(), { retry: { delaysMs: [] } }).pipe(
          Effect.forkChild
        )
        yield* TestClock.adjust(1999)
        // Four sweeps of real time: a timer on real time would not fire
        // either, so also check that test time alone makes it fire below.
        yield* realWait(100)
        expect(Option.isNone(yield* Effect.sync(() => Option.fromUndefinedOr(fiber.pollUnsafe())))).toBe(true)
        yield* TestClock.adjust(1)
        return yield* Effect.flip(Fiber.join(fiber))
      }).pipe(Effect.provide(layerFor(h.client)))
      expect(error._tag).toBe("TimeoutError")
      expect(error.code).toBe("ATTEMPT_TIMEOUT")
      expect(h.sent()).toBe(1)
      // Two seconds of attempt timeout took no two seconds of real time.
      expect((yield* realMillis) - startedReal).toBeLessThan(1500)
    }))

  it.effect("the retry schedule's delays are waited in test time", () =>
    Effect.gen(function*() {
      const h = hanging()
      const startedReal = yield* realMillis
      yield* Effect.gen(function*() {
        const fiber = yield* Database.query((c: Hanging) => c.order.findUnique()).pipe(Effect.forkChild)
        yield* TestClock.adjust(2000)
        // attempt 1 timed out at 2000: the schedule sleeps 500 ms of test time
        yield* sleepingUntil(2500)
        expect(h.sent()).toBe(1)
        yield* TestClock.adjust(499)
        yield* realWait(50)
        expect(h.sent()).toBe(1)
        yield* TestClock.adjust(1)
        yield* sentReaches(h, 2)
        // attempt 2 times out at 4500, then 1000 ms until attempt 3
        yield* TestClock.adjust(2000)
        yield* sleepingUntil(5500)
        expect(h.sent()).toBe(2)
        yield* TestClock.adjust(1000)
        yield* sentReaches(h, 3)
        yield* Fiber.interrupt(fiber)
      }).pipe(Effect.provide(layerFor(h.client)))
      expect((yield* realMillis) - startedReal).toBeLessThan(3000)
    }))

  it.effect("the whole query fails once the request budget of test time is spent", () =>
    Effect.gen(function*() {
      const h = hanging()
      const startedReal = yield* realMillis
      const error = yield* Effect.gen(function*() {
        // 4000 ms: attempt 1 (0-2000), 500 ms delay, attempt 2 cut to the
        // 1500 ms left (2500-4000); no time left for another.
        const fiber = yield* Database.query((c: Hanging) => c.order.findUnique()).pipe(
          RetryPolicy.withBudget("4 seconds"),
          Effect.forkChild
        )
        yield* TestClock.adjust(2000)
        yield* sleepingUntil(2500)
        yield* TestClock.adjust(500)
        yield* sentReaches(h, 2)
        yield* TestClock.adjust(1499)
        yield* realWait(100)
        expect(Option.isNone(yield* Effect.sync(() => Option.fromUndefinedOr(fiber.pollUnsafe())))).toBe(true)
        yield* TestClock.adjust(1)
        return yield* Effect.flip(Fiber.join(fiber))
      }).pipe(Effect.provide(layerFor(h.client)))
      expect(error._tag).toBe("TimeoutError")
      expect(error.code).toBe("ATTEMPT_TIMEOUT")
      expect(error.message).toContain("1500 ms")
      expect(h.sent()).toBe(2)
      expect((yield* realMillis) - startedReal).toBeLessThan(3000)
    }))
})

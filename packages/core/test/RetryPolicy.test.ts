import { ConnectionError, type DatabaseError, QueryError, RetryPolicy, type RetrySafety, TimeoutError } from "@prisma-resilience/core"
import { describe, expect, it } from "./support/vitest.js"
import { Clock, ConfigProvider, Duration, Effect, Fiber, Option, Pull, Result, Schedule } from "effect"
import * as TestClock from "effect/testing/TestClock"

const error = (safety: RetrySafety, tag: "ConnectionError" | "QueryError" = "ConnectionError"): DatabaseError => {
  const fields = { operation: "test", attempt: 1, safety, code: undefined, message: `${safety} failure`, cause: undefined }
  return tag === "ConnectionError" ? new ConnectionError(fields) : new QueryError(fields)
}

/** Runs a retried operation that fails `failures` times, recording the clock at each attempt. */
const attemptTimes = (options: {
  readonly config?: Partial<RetryPolicy.RetryConfig>
  readonly kind?: "read" | "write" | "idempotent-write" | "transaction"
  readonly failure: DatabaseError
  readonly failures?: number
  readonly attemptMs?: number
  readonly advanceMs?: number
}) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    const start = yield* Clock.currentTimeMillis
    const timeouts: Array<number> = []
    const config = { ...RetryPolicy.defaults, ...options.config }
    const fiber = yield* RetryPolicy.retry(
      ({ attempt, timeoutMs }) =>
        Effect.gen(function*() {
          times.push((yield* Clock.currentTimeMillis) - start)
          timeouts.push(timeoutMs)
          if (options.attemptMs) yield* Effect.sleep(options.attemptMs)
          if (attempt > (options.failures ?? Infinity)) return attempt
          return yield* Effect.fail(options.failure)
        }),
      { config, operation: "test.op", kind: options.kind ?? "read" }
    ).pipe(Effect.result, Effect.forkChild)
    yield* TestClock.adjust(options.advanceMs ?? 60_000)
    const result = yield* Fiber.join(fiber)
    return { times, timeouts, result }
  })

describe("RetryPolicy", () => {
  it.effect("default policy: attempts at exactly 0, 500 and 1500 ms, then gives up", () =>
    Effect.gen(function*() {
      const { result, times } = yield* attemptTimes({ failure: error("before-send") })
      expect(times).toEqual([0, 500, 1500])
      expect(Result.isFailure(result)).toBe(true)
    }))

  it.effect("succeeds on the attempt after the failures", () =>
    Effect.gen(function*() {
      const { result, times } = yield* attemptTimes({ failure: error("before-send"), failures: 1 })
      expect(times).toEqual([0, 500])
      expect(result).toEqual(Result.succeed(2))
    }))

  it.effect("a non-retryable error makes exactly one attempt", () =>
    Effect.gen(function*() {
      const { result, times } = yield* attemptTimes({ failure: error("never", "QueryError") })
      expect(times).toEqual([0])
      expect(Result.isFailure(result) && result.failure._tag).toBe("QueryError")
    }))

  it.effect("an ambiguous error on a non-idempotent write makes exactly one attempt", () =>
    Effect.gen(function*() {
      const write = yield* attemptTimes({ failure: error("ambiguous"), kind: "write" })
      expect(write.times).toEqual([0])
      const tx = yield* attemptTimes({ failure: error("ambiguous"), kind: "transaction" })
      expect(tx.times).toEqual([0])
    }))

  it.effect("an ambiguous error is retried for reads and idempotent writes", () =>
    Effect.gen(function*() {
      expect((yield* attemptTimes({ failure: error("ambiguous"), kind: "read" })).times).toEqual([0, 500, 1500])
      expect((yield* attemptTimes({ failure: error("ambiguous"), kind: "idempotent-write" })).times).toEqual([
        0,
        500,
        1500
      ])
    }))

  it.effect("a before-send error is retried for writes; a conflict is retried for transactions", () =>
    Effect.gen(function*() {
      expect((yield* attemptTimes({ failure: error("before-send"), kind: "write" })).times).toEqual([0, 500, 1500])
      expect((yield* attemptTimes({ failure: error("transaction"), kind: "transaction" })).times).toEqual([
        0,
        500,
        1500
      ])
    }))

  it.effect("a budget of 1200 ms stops before the third attempt", () =>
    Effect.gen(function*() {
      const { result, times } = yield* attemptTimes({ failure: error("before-send"), config: { requestBudgetMs: 1200 } })
      expect(times).toEqual([0, 500])
      expect(Result.isFailure(result)).toBe(true)
    }))

  it.effect("the request deadline set by withBudget wins over the configured budget", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptTimes({ failure: error("before-send") }).pipe(RetryPolicy.withBudget(400))
      expect(times).toEqual([0])
    }))

  it.effect("attempt timeouts are shortened so that no attempt runs past the deadline", () =>
    Effect.gen(function*() {
      const { timeouts } = yield* attemptTimes({
        failure: error("before-send"),
        config: { requestBudgetMs: 3000, attemptTimeoutMs: 2000, warmupWaitMs: 0 }
      })
      // attempt 1 at 0 (2000 left of 3000), attempt 2 at 500 (2500 left) then at 1500 only 1500 ms remain
      expect(timeouts).toEqual([2000, 2000, 1500])
    }))

  it.effect("worst case of the default policy: every attempt times out, all done within 9 s", () =>
    Effect.gen(function*() {
      const timeout = new TimeoutError({
        operation: "test",
        attempt: 1,
        safety: "ambiguous",
        code: "ATTEMPT_TIMEOUT",
        message: "timed out",
        cause: undefined
      })
      const starts: Array<number> = []
      const fiber = yield* RetryPolicy.retry(
        ({ timeoutMs }) =>
          Clock.currentTimeMillis.pipe(
            Effect.tap((now) => Effect.sync(() => starts.push(now))),
            Effect.andThen(Effect.sleep(timeoutMs)),
            Effect.andThen(Effect.fail(timeout))
          ),
        { config: RetryPolicy.defaults, operation: "slow", kind: "read" }
      ).pipe(Effect.result, Effect.forkChild)
      // 3 attempts × 2000 ms + 500 + 1000 ms of delays = 7500 ms, which with
      // the 1500 ms warm-up wait is the 9000 ms budget exactly.
      yield* TestClock.adjust(7499)
      expect(Option.isNone(yield* Effect.sync(() => Option.fromUndefinedOr(fiber.pollUnsafe())))).toBe(true)
      yield* TestClock.adjust(1)
      const result = yield* Fiber.join(fiber)
      expect(Result.isFailure(result) && result.failure._tag).toBe("TimeoutError")
      expect(starts).toEqual([0, 2500, 5500])
    }))

  it.effect("no retries configured: one attempt", () =>
    Effect.gen(function*() {
      const { times } = yield* attemptTimes({ failure: error("before-send"), config: { delaysMs: [] } })
      expect(times).toEqual([0])
    }))

  it("the schedule is data: fromDelays 500, 1000 continues twice", () => {
    const config = RetryPolicy.defaults
    const outputs = Effect.runSync(
      Effect.gen(function*() {
        const schedule = RetryPolicy.schedule(config, { kind: "read", deadlineMs: Number.MAX_SAFE_INTEGER })
        const step = yield* Schedule.toStep(schedule)
        const delays: Array<number> = []
        for (let i = 0; i < 4; i++) {
          const out = yield* Pull.catchDone(Effect.map(step(0, error("before-send")), ([, delay]) => delay), () => Effect.succeed(undefined))
          if (out === undefined) break
          delays.push(Duration.toMillis(out))
        }
        return delays
      })
    )
    expect(outputs).toEqual([500, 1000])
  })

  describe("configuration", () => {
    const load = (env: Record<string, string>) =>
      Effect.runSync(
        Effect.result(
          Effect.flatMap(RetryPolicy.config, RetryPolicy.validate).pipe(
            Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(Object.fromEntries(Object.entries(env))))
          )
        )
      )

    it("defaults: 500,1000 ms, 9 s budget, and they pass the start-up check", () => {
      expect(load({})).toEqual(Result.succeed(RetryPolicy.defaults))
      expect(RetryPolicy.worstCase(RetryPolicy.defaults).totalMs).toBeLessThanOrEqual(9000)
    })

    it("reads the environment", () => {
      const result = load({ DB_RETRY_DELAYS_MS: "100, 200,400", DB_ATTEMPT_TIMEOUT_MS: "1000", DB_REQUEST_BUDGET_MS: "8000" })
      expect(Result.isSuccess(result) && result.success.delaysMs).toEqual([100, 200, 400])
    })

    it("rejects a policy whose worst case exceeds the budget, showing the arithmetic", () => {
      const result = load({ DB_ATTEMPT_TIMEOUT_MS: "3000" })
      expect(Result.isFailure(result)).toBe(true)
      const message = Result.isFailure(result) ? String((result.failure as { message: string }).message) : ""
      expect(message).toContain("1500 ms warm-up wait + 3 attempts × 3000 ms + delays 500 + 1000 ms = 12000 ms")
      expect(message).toContain("> DB_REQUEST_BUDGET_MS 9000 ms")
    })

    it("rejects malformed delays with a clear message", () => {
      const result = load({ DB_RETRY_DELAYS_MS: "500,abc" })
      expect(Result.isFailure(result)).toBe(true)
      expect(String(Result.isFailure(result) ? result.failure : "")).toContain("DB_RETRY_DELAYS_MS")
    })
  })
})

describe("the start-up check", () => {
  it("the start-up check refuses a policy whose attempts and delays exceed the budget, showing the arithmetic", async () => {
    const refused = await Effect.runPromise(
      Effect.result(RetryPolicy.validate({ ...RetryPolicy.defaults, attemptTimeoutMs: 2500 }))
    )
    expect(Result.isFailure(refused) && refused.failure.message).toMatch(
      /1500 ms warm-up wait \+ 3 attempts × 2500 ms \+ delays 500 \+ 1000 ms = 10500 ms > DB_REQUEST_BUDGET_MS 9000 ms/
    )
    expect(Result.isSuccess(await Effect.runPromise(Effect.result(RetryPolicy.validate(RetryPolicy.defaults))))).toBe(true)
  })
})

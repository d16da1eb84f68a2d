import {
  ConnectionError,
  Database,
  type DatabaseService,
  health,
  Metrics,
  type PoolSettings,
  type PrismaClientLike,
  RetryBudget,
  RetryPolicy
} from "@prisma-resilience/core"
import { describe, expect, it } from "./support/vitest.js"
import { Effect, Result, Fiber, Metric } from "effect"
import * as TestClock from "effect/testing/TestClock"
import { meteredBreaker, meteredBudget } from "../src/internal/meteredGuards.js"

const connectionError = new ConnectionError({
  operation: "op",
  attempt: 1,
  safety: "before-send",
  code: "ECONNREFUSED",
  message: "refused",
  cause: undefined
})

describe("RetryBudget", () => {
  it("token arithmetic: failures take one, successes give back the ratio, retries stop at half", () => {
    const budget = meteredBudget({ maxTokens: 10, tokenRatio: 0.1 })
    expect(budget.tokens()).toBe(10)
    budget.onSuccess()
    expect(budget.tokens()).toBe(10)
    for (let i = 0; i < 4; i++) budget.onFailure()
    expect(budget.tokens()).toBe(6)
    expect(budget.allowsRetry()).toBe(true)
    budget.onFailure()
    expect(budget.tokens()).toBe(5)
    expect(budget.allowsRetry()).toBe(false)
    for (let i = 0; i < 20; i++) budget.onFailure()
    expect(budget.tokens()).toBe(0)
  })

  it("successes refill the bucket: 51 successes bring 0 tokens back above half", () => {
    const budget = meteredBudget({ maxTokens: 10, tokenRatio: 0.1 })
    for (let i = 0; i < 10; i++) budget.onFailure()
    for (let i = 0; i < 50; i++) budget.onSuccess()
    expect(budget.tokens()).toBeCloseTo(5)
    expect(budget.allowsRetry()).toBe(false)
    budget.onSuccess()
    expect(budget.allowsRetry()).toBe(true)
    for (let i = 0; i < 100; i++) budget.onSuccess()
    expect(budget.tokens()).toBe(10)
  })

  it("maxTokens 0 disables it", () => {
    const budget = meteredBudget({ maxTokens: 0, tokenRatio: 0.1 })
    for (let i = 0; i < 10; i++) budget.onFailure()
    expect(budget.allowsRetry()).toBe(true)
  })

  it.effect("an exhausted budget leaves one attempt; the schedule alone would give three", () =>
    Effect.gen(function*() {
      const run = (allows: boolean) =>
        Effect.gen(function*() {
          let attempts = 0
          const fiber = yield* RetryPolicy.retry(
            () =>
              Effect.suspend(() => {
                attempts++
                return Effect.fail(connectionError)
              }),
            { config: RetryPolicy.defaults, operation: "budget", kind: "read", budget: { allowsRetry: () => allows } }
          ).pipe(Effect.result, Effect.forkChild)
          yield* TestClock.adjust(5000)
          yield* Fiber.join(fiber)
          return attempts
        })
      expect(yield* run(false)).toBe(1)
      expect(yield* run(true)).toBe(3)
    }))
})


describe("CircuitBreaker", () => {
  const config = { failureThreshold: 3, resetTimeoutMs: 1000 }

  it("closed → open after the threshold → half-open after the reset time → closed on a good probe", () => {
    const transitions: Array<string> = []
    const breaker = meteredBreaker(config, ({ from, to }) => transitions.push(`${from}→${to}`))
    for (let t = 0; t < 3; t++) {
      const permit = breaker.acquire(t)
      expect(permit._tag).toBe("Allowed")
      breaker.onFailure(t, permit, "ConnectionError")
    }
    expect(breaker.state(2)).toBe("open")
    expect(breaker.acquire(500)).toEqual({ _tag: "Rejected", retryAfterMs: 502, state: "open" })
    expect(breaker.state(1002)).toBe("half-open")
    const probe = breaker.acquire(1002)
    expect(probe).toEqual({ _tag: "Allowed", probe: true })
    breaker.onSuccess(1010, probe)
    expect(breaker.state(1010)).toBe("closed")
    expect(transitions).toEqual(["closed→open", "open→half-open", "half-open→closed"])
  })

  it("a failed probe opens it again for another reset period", () => {
    const breaker = meteredBreaker(config)
    for (let t = 0; t < 3; t++) breaker.onFailure(t, breaker.acquire(t), "ConnectionError")
    const probe = breaker.acquire(1500)
    expect(probe._tag === "Allowed" && probe.probe).toBe(true)
    breaker.onFailure(1600, probe, "ConnectionError")
    expect(breaker.state(1600)).toBe("open")
    expect(breaker.acquire(2599)._tag).toBe("Rejected")
    expect(breaker.acquire(2600)).toEqual({ _tag: "Allowed", probe: true })
  })

  it("a success between failures resets the count", () => {
    const breaker = meteredBreaker(config)
    breaker.onFailure(0, breaker.acquire(0), "E")
    breaker.onFailure(1, breaker.acquire(1), "E")
    breaker.onSuccess(2, breaker.acquire(2))
    breaker.onFailure(3, breaker.acquire(3), "E")
    breaker.onFailure(4, breaker.acquire(4), "E")
    expect(breaker.state(4)).toBe("closed")
  })

  it("failureThreshold 0 disables it", () => {
    const breaker = meteredBreaker({ failureThreshold: 0, resetTimeoutMs: 1000 })
    for (let t = 0; t < 50; t++) breaker.onFailure(t, breaker.acquire(t), "E")
    expect(breaker.acquire(50)._tag).toBe("Allowed")
  })
})

describe("budget and breaker inside Database (TestClock, stand-in client)", () => {
  const pool: PoolSettings = { max: 1, connectionTimeoutMillis: 100, idleTimeoutMillis: 100 }
  const warmup = {
    timeoutMs: 1000,
    attemptTimeoutMs: 1000,
    backoffMs: 10,
    backoffMaxMs: 10,
    healthTimeoutMs: 100,
    shutdownTimeoutMs: 100
  }
  const refused = () => Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })

  /**
   * A client whose queries follow `behaviour`. Like Prisma's, its promises are
   * lazy: a query is sent (and counted) only when awaited.
   */
  const stand = (behaviour: () => Promise<unknown>) => {
    let calls = 0
    const lazy = (): PromiseLike<unknown> & { readonly [Symbol.toStringTag]: string } => ({
      [Symbol.toStringTag]: "PrismaPromise",
      then: (onFulfilled, onRejected) => {
        calls++
        return behaviour().then(onFulfilled, onRejected)
      }
    })
    const client: PrismaClientLike & { read: () => PromiseLike<unknown> } = {
      $connect: () => Promise.resolve(),
      $disconnect: () => Promise.resolve(),
      $queryRaw: () => Promise.resolve([1]),
      $transaction: () => Promise.reject(new Error("unused")),
      read: lazy
    }
    return { client, sent: () => calls }
  }
  const layerFor = (client: PrismaClientLike) =>
    Database.layer({
      client: () => client,
      pool,
      warmup,
      retry: RetryPolicy.defaults,
      retryBudget: RetryBudget.defaults,
      circuitBreaker: { failureThreshold: 5, resetTimeoutMs: 2000 }
    })
  const read = (db: DatabaseService) =>
    db.query((c: { read: () => PromiseLike<unknown> }) => c.read(), { operation: "stand.read" })

  it.effect("a single blip under light load still gets its retry", () =>
    Effect.gen(function*() {
      let failed = false
      const s = stand(() => {
        if (failed) return Promise.resolve("ok")
        failed = true
        return Promise.reject(refused())
      })
      const result = yield* Effect.gen(function*() {
        const db = yield* Database
        const fiber = yield* read(db).pipe(Effect.forkChild)
        yield* TestClock.adjust(500)
        return yield* Fiber.join(fiber)
      }).pipe(Effect.provide(layerFor(s.client)))
      expect(result).toBe("ok")
      expect(s.sent()).toBe(2)
    }))

  it.effect("exactly one probe in flight under 20 concurrent callers when half-open; its success closes the circuit", () =>
    Effect.gen(function*() {
      let down = true
      let release: (() => void) | undefined
      const s = stand(() => {
        if (down) return Promise.reject(refused())
        if (release !== undefined) return Promise.resolve("ok")
        // The probe hangs until released, so that the other 19 arrive while it is in flight.
        return new Promise((resolve) => {
          release = () => resolve("ok")
        })
      })
      yield* Effect.gen(function*() {
        const db = yield* Database
        // 5 consecutive failures open the circuit: request 1 makes 3 attempts,
        // request 2 opens it on its second.
        let requests = 0
        while ((yield* db.circuit).state === "closed" && requests < 10) {
          requests++
          const fiber = yield* read(db).pipe(Effect.result, Effect.forkChild)
          yield* TestClock.adjust(1500)
          yield* Fiber.join(fiber)
        }
        expect(requests).toBe(2)
        expect(s.sent()).toBe(5)
        expect((yield* db.circuit).state).toBe("open")
        const unhealthy = yield* Effect.result(Effect.provideService(health, Database, db))
        expect(Result.isFailure(unhealthy) && unhealthy.failure.reason).toBe("circuit_open")
        const callsWhileOpen = s.sent()
        const fastFail = yield* read(db).pipe(Effect.result)
        expect(Result.isFailure(fastFail) && fastFail.failure._tag).toBe("CircuitOpenError")
        expect(s.sent()).toBe(callsWhileOpen)

        down = false
        yield* TestClock.adjust(2000)
        expect((yield* db.circuit).state).toBe("half-open")
        const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () => read(db).pipe(Effect.result, Effect.forkChild))
        yield* Effect.yieldNow
        expect(s.sent()).toBe(callsWhileOpen + 1)
        release?.()
        const results = yield* Effect.forEach(fibers, (f) => Fiber.join(f))
        const succeeded = results.filter(Result.isSuccess)
        const rejected = results.filter((r) => Result.isFailure(r) && r.failure._tag === "CircuitOpenError")
        expect(succeeded.length).toBe(1)
        expect(rejected.length).toBe(19)
        expect((yield* db.circuit).state).toBe("closed")
        expect(yield* read(db)).toBe("ok")
        expect((yield* Metric.value(Metric.withAttributes(Metrics.circuitState, [["database", "default"]]))).value).toBe(0)
      }).pipe(Effect.provide(layerFor(s.client)))
    }))
})

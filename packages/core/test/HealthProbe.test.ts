// Health's probe as a unit: the canary (the last failed read, run again to
// learn whether the query path works) is sent once for health checks that
// arrive together, and again by a later check.
import { makeTimer, QueryHealth } from "@prisma-resilience/kernel"
import * as Breaker from "@prisma-resilience/kernel/circuitBreaker"
import * as Budget from "@prisma-resilience/kernel/retryBudget"
import { describe, expect, it } from "./support/vitest.js"
import { Clock, Effect, Fiber } from "effect"
import type { Guard } from "../src/internal/attempt.js"
import { healthProbe } from "../src/internal/healthProbe.js"

const failingGuard = () => {
  const queryHealth = QueryHealth.make({ failedQueries: 1, stallMs: 0 })
  queryHealth.started(0)
  // a failure SELECT 1 cannot see (a missing table): only the canary can end it
  queryHealth.settled(0, true, "QueryError (42P01)", "permanent")
  let sent = 0
  let release: (() => void) | undefined
  const guard: Guard = {
    budget: Budget.make(Budget.defaults),
    breaker: Breaker.make({ failureThreshold: 0, resetTimeoutMs: 1000 }),
    clock: Effect.runSync(Clock.Clock),
    timer: makeTimer(() => performance.now()),
    overloaded: () => false,
    queryHealth,
    generation: 0,
    canary: () => {
      sent++
      return new Promise<void>((resolve) => (release = resolve))
    }
  }
  return { guard, sent: () => sent, release: () => release?.() }
}

describe("health probe", () => {
  it.effect("health checks that arrive together send the canary once, and its success clears the path", () =>
    Effect.gen(function*() {
      const { guard, release, sent } = failingGuard()
      const probe = healthProbe(guard, () => Effect.succeed(1), { timeoutMs: 5000, quietMs: 1000 })
      const checks = yield* Effect.forkChild(Effect.all([probe, probe, probe], { concurrency: "unbounded" }))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
      expect(sent()).toBe(1)
      release()
      yield* Fiber.await(checks)
      expect(guard.queryHealth.degraded(1)).toBeUndefined()
      expect(guard.canary).toBeUndefined()
    }), { timeout: 10_000 })

  it.effect("a later check runs the canary again while the path still fails", () =>
    Effect.gen(function*() {
      const { guard, sent } = failingGuard()
      const canary = guard.canary!
      guard.canary = () => {
        void canary()
        return Promise.reject(new Error("relation \"t\" does not exist"))
      }
      const probe = healthProbe(guard, () => Effect.succeed(1), { timeoutMs: 5000, quietMs: 1000 })
      yield* probe
      yield* probe
      expect(sent()).toBe(2)
      expect(guard.queryHealth.degraded(1)?.reason).toBe("failing")
    }))
})

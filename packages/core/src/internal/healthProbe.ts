/**
 * Health's probe, which must be able to say "the database is back" with no
 * other traffic: an instance behind a readiness gate (Kubernetes, a load
 * balancer that routes only to instances whose health passes) gets no query
 * while its health fails, so a health check that waited for a query to close
 * the breaker or to clear the query path's failures would fail for good.
 *
 * - The probe takes the circuit breaker's half-open slot when it is due and
 *   settles it: a passing probe closes the breaker, a failing one opens it
 *   again. While the breaker is open (not yet due) it sends nothing.
 * - A passing probe ends a spell of failed queries only when `SELECT 1` would
 *   have met those failures itself (the server unreachable, connections
 *   closed). Failures it cannot see (a lock, a broken table) need a real
 *   query that succeeds: the last failed one-call read, run again (a read is
 *   safe to send again). Without one, only transient failures end, after a
 *   breaker reset interval without a new one (see `QueryHealth.expire`).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { CircuitOpenError, type DatabaseError } from "../Errors.js"
import type { Permit } from "@prisma-resilience/kernel/circuitBreaker"
import { awaitWithTimeout, type Guard } from "./attempt.js"
import { describe } from "@prisma-resilience/kernel/describe"
import { NOT_WRITABLE } from "./topology.js"

export interface HealthProbeOptions {
  /** the probe's own timeout, and the canary's */
  readonly timeoutMs: number
  /** how long a spell of transient failures must stay quiet before a passing probe ends it without a canary */
  readonly quietMs: number
}

const rejected = (permit: Extract<Permit, { _tag: "Rejected" }>) =>
  new CircuitOpenError({
    operation: "health",
    attempt: 1,
    safety: "never",
    code: "CIRCUIT_OPEN",
    message: `circuit breaker ${permit.state} after repeated database failures; next probe in ${Math.max(0, permit.retryAfterMs)} ms`,
    cause: undefined,
    retryAfterMs: Math.max(0, permit.retryAfterMs)
  })

/** Settles the breaker's permit with the probe's outcome; only a half-open probe has a say. */
const settle = (guard: Guard, permit: Permit) => (exit: Exit.Exit<number, DatabaseError>) =>
  Effect.sync(() => {
    if (permit._tag !== "Allowed" || !permit.probe) return
    const now = guard.clock.currentTimeMillisUnsafe()
    if (exit._tag === "Success") return guard.breaker.onSuccess(now, permit)
    const failure = Option.getOrUndefined(Cause.findErrorOption(exit.cause))
    // Interrupted, or a node that is not the writer (the search for the
    // writer takes over): the slot goes to the next caller.
    if (failure === undefined || failure.code === NOT_WRITABLE) return guard.breaker.onNeutral(permit)
    guard.breaker.onFailure(now, permit, failure._tag)
  })

// One run of a guard's canary at a time: health checks that arrive together
// (a gate and a probe of the platform, say) share it instead of each sending
// the read again.
const running = new WeakMap<Guard, { readonly canary: () => PromiseLike<unknown>; readonly run: Promise<unknown> }>()

const shared = (guard: Guard, canary: () => PromiseLike<unknown>): Promise<unknown> => {
  const current = running.get(guard)
  if (current?.canary === canary) return current.run
  // A canary that throws instead of returning its promise fails this run.
  const run = new Promise<unknown>((resolve) => resolve(canary()))
  running.set(guard, { canary, run })
  const done = () => {
    if (running.get(guard)?.run === run) running.delete(guard)
  }
  run.then(done, done)
  return run
}

/** Runs the last failed read again; its success ends the spell of failures `SELECT 1` could not see. */
const runCanary = (guard: Guard, timeoutMs: number): Effect.Effect<void> => {
  const canary = guard.canary
  if (canary === undefined) return Effect.void
  return Effect.suspend(() => awaitWithTimeout(guard.timer, shared(guard, canary), timeoutMs, "health canary", 1)).pipe(
    Effect.matchEffect({
      onSuccess: () =>
        Effect.sync(() => {
          guard.queryHealth.reset(guard.clock.currentTimeMillisUnsafe())
          if (guard.canary === canary) guard.canary = undefined
        }).pipe(Effect.andThen(Effect.logInfo("Health: the last failed read succeeded again; the query path works"))),
      onFailure: (error) => Effect.logDebug(`Health: the last failed read still fails: ${describe(error)}`)
    })
  )
}

/** `ping` as health's probe of `guard`'s breaker and query path; succeeds with its latency in ms. */
export const healthProbe = (
  guard: Guard,
  ping: (timeoutMs: number) => Effect.Effect<number, DatabaseError>,
  options: HealthProbeOptions
): Effect.Effect<number, DatabaseError> =>
  Effect.suspend(() => {
    const permit = guard.breaker.acquire(guard.clock.currentTimeMillisUnsafe())
    if (permit._tag === "Rejected") return Effect.fail(rejected(permit))
    return ping(options.timeoutMs).pipe(
      Effect.onExit(settle(guard, permit)),
      Effect.tap(() => {
        const now = guard.clock.currentTimeMillisUnsafe()
        const spell = guard.queryHealth.probePassed(now)
        if (spell !== "hidden") return Effect.void
        if (guard.canary !== undefined) return runCanary(guard, options.timeoutMs)
        return Effect.sync(() => guard.queryHealth.expire(now, options.quietMs))
      })
    )
  })

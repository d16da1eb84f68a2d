/**
 * Hot-path helpers of `Database.query`: awaiting a Prisma promise under a
 * timeout without a fiber or a timer per call (the kernel's `Timer`, one per
 * `Database`, on its clock), and naming the operation a
 * query function performs.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as CircuitBreaker from "@prisma-resilience/kernel/circuitBreaker"
import { classify } from "../Classify.js"
import { CircuitOpenError, type DatabaseError, TimeoutError } from "../Errors.js"
import * as Metrics from "./metrics.js"
import { isBrokenSchema, isServerCancellation } from "@prisma-resilience/kernel/classify"
import * as QueryHealth from "@prisma-resilience/kernel/queryHealth"
import type * as RetryBudget from "@prisma-resilience/kernel/retryBudget"
import { tagAndCode } from "@prisma-resilience/kernel/describe"
import type { Timer } from "@prisma-resilience/kernel/timer"

/** The code of a `TimeoutError` of the client's own timer: the promise was still pending. */
export const ATTEMPT_TIMEOUT = "ATTEMPT_TIMEOUT"

/**
 * What settles with an attempt, passed as plain values so the success path
 * allocates no callbacks: the query's start (`guard.timer.now()`) for the
 * duration metric, and the shared retry budget and circuit breaker with this
 * attempt's permit.
 */
export interface AttemptContext {
  readonly started: number
  readonly guard: Guard
  readonly permit: CircuitBreaker.Permit
  /** the guard's `generation` when the attempt started */
  readonly generation: number
}

/** The retry budget and circuit breaker shared by the queries of one `Database`. */
export interface Guard {
  readonly budget: RetryBudget.RetryBudget
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly clock: Clock.Clock
  /** the attempt timeouts, on `clock`; its `now` also times durations (fractional ms on the live clock) */
  readonly timer: Timer
  /** whether `error` is a wait for a connection of a pool that is full now: the process is overloaded, or its connections are stuck */
  readonly overloaded: (error: DatabaseError) => boolean
  /** what the attempts say about the query path, for health */
  readonly queryHealth: QueryHealth.QueryHealth
  /**
   * Bumped when the queries move to another node (a new writer): attempts
   * of an older generation settle without a say in the breaker or the budget.
   */
  generation: number
  /**
   * Hears of every failed attempt of the current generation (a failover
   * shows first here); true when the error only says the attempt went to
   * the wrong node, which the node that takes it over will not repeat.
   */
  readonly suspect?: ((error: DatabaseError) => boolean) | undefined
  /**
   * The last failed query that was one read: health runs it again to learn
   * whether the query path works once more, when a passing `SELECT 1` cannot
   * tell (a lock, a broken table).
   */
  canary?: (() => PromiseLike<unknown>) | undefined
  /** `db_node_queries_total` labels of the node the attempts go to, when the database has several */
  node?: { readonly success: Metrics.Labels; readonly failure: Metrics.Labels } | undefined
}

const settleSuccess = (context: AttemptContext, now: number, brokenPath?: DatabaseError) => {
  if (context.guard.node !== undefined) Metrics.record(Metrics.nodeQueries, 1, context.guard.node.success)
  context.guard.budget.onSuccess()
  context.guard.breaker.onSuccess(now, context.permit)
  context.guard.queryHealth.settled(now, brokenPath !== undefined, brokenPath && tagAndCode(brokenPath), "permanent")
}

const settleFailure = (context: AttemptContext, error: DatabaseError) => {
  const now = context.guard.clock.currentTimeMillisUnsafe()
  if (context.generation !== context.guard.generation) {
    // The node this attempt went to is no longer the one the queries use.
    return context.guard.queryHealth.settled(now, false)
  }
  // A non-retryable error (P2002, ...) or a transaction conflict is an answer
  // from a working database: contention must neither drain the budget nor open
  // the circuit. A missing table is an answer too, but one every query of it
  // will get: health hears of it.
  if (error.safety === "never" || error.safety === "transaction") {
    return settleSuccess(context, now, isBrokenSchema(error.code) ? error : undefined)
  }
  context.guard.queryHealth.settled(now, true, tagAndCode(error), QueryHealth.failureClass(error._tag, error.code))
  if (context.guard.node !== undefined) Metrics.record(Metrics.nodeQueries, 1, context.guard.node.failure)
  // Neither the circuit nor the budget hears of a node saying it is not the
  // writer: the retry goes to the node that is.
  if (context.guard.suspect?.(error) === true) return context.guard.breaker.onNeutral(context.permit)
  // The query never reached the database: its pool was full. Overload is the
  // caller's to shed (503 + Retry-After), not a reason to open the circuit.
  if (context.guard.overloaded(error)) return context.guard.breaker.onNeutral(context.permit)
  context.guard.budget.onFailure()
  context.guard.breaker.onFailure(now, context.permit, error._tag)
}

/**
 * Awaits `promise` for at most `timeoutMs`, then calls `onSuccess` or
 * `onFailure` once. With a `context`, counts the attempt's outcome in
 * `db_query_attempts_total` (and the duration on success) and settles it with
 * the retry budget and circuit breaker first. A settlement after the timeout
 * is observed and dropped, so it can never become an unhandled rejection.
 */
export const settleWithTimeout = <A>(
  timer: Timer,
  promise: PromiseLike<A>,
  timeoutMs: number,
  operation: string,
  attempt: number,
  context: AttemptContext | undefined,
  onSuccess: (value: A) => void,
  onFailure: (error: DatabaseError) => void
): void => {
  let done = false
  const fail = (error: DatabaseError) => {
    if (context !== undefined) {
      Metrics.record(Metrics.queryAttempts, 1, Metrics.attemptLabels(operation, attempt, error._tag))
      if (isServerCancellation(error.code)) {
        Metrics.record(Metrics.statementCancellations, 1, Metrics.cancellationLabels(operation, error.code!))
      }
      settleFailure(context, error)
    }
    onFailure(error)
  }
  const entry = timer.track(timeoutMs, () => {
    if (done) return
    done = true
    fail(
      new TimeoutError({
        operation,
        attempt,
        safety: "ambiguous",
        code: ATTEMPT_TIMEOUT,
        message: `attempt timed out after ${timeoutMs} ms`,
        cause: undefined
      })
    )
  })
  promise.then(
    (value) => {
      if (done) return
      done = true
      timer.untrack(entry)
      if (context !== undefined) {
        Metrics.record(Metrics.queryAttempts, 1, Metrics.attemptLabels(operation, attempt, "success"))
        recordDuration(timer, operation, context.started)
        settleSuccess(context, context.guard.clock.currentTimeMillisUnsafe())
      }
      onSuccess(value)
    },
    (error: unknown) => {
      if (done) return
      done = true
      timer.untrack(entry)
      fail(classify(error, { operation, attempt }))
    }
  )
}

/**
 * `settleWithTimeout` as an Effect. No canceler: registering one costs more
 * than the whole await. An interrupted attempt stays tracked until its
 * promise settles or expires, and a resume after interruption is ignored.
 */
export const awaitWithTimeout = <A>(
  timer: Timer,
  promise: PromiseLike<A>,
  timeoutMs: number,
  operation: string,
  attempt: number,
  context?: AttemptContext,
  recover?: Recover<A>
): Effect.Effect<A, DatabaseError> =>
  Effect.callback<A, DatabaseError>((resume) =>
    settleWithTimeout(
      timer,
      promise,
      timeoutMs,
      operation,
      attempt,
      context,
      (value) => resume(Effect.succeed(value)),
      (error) => resume(recover === undefined ? Effect.fail(error) : recover(error))
    )
  )

/**
 * What to continue with after a failed attempt, in place of failing: passing
 * it here instead of wrapping the attempt in `catchAll` keeps the success path
 * one Effect operation shorter.
 */
export type Recover<A> = (error: DatabaseError) => Effect.Effect<A, DatabaseError>

/**
 * Starts one guarded attempt: asks the circuit breaker first and settles at
 * once with `CircuitOpenError` (nothing sent) while it is open.
 */
export const startGuardedAttempt = <A>(
  guard: Guard,
  makePromise: () => PromiseLike<A>,
  timeoutMs: number,
  operation: string,
  attempt: number,
  started: number,
  onSuccess: (value: A) => void,
  onFailure: (error: DatabaseError) => void
): void => {
  const now = guard.clock.currentTimeMillisUnsafe()
  const permit = guard.breaker.acquire(now)
  if (permit._tag === "Rejected") {
    Metrics.record(Metrics.circuitRejections, 1, Metrics.operationLabels(operation))
    return onFailure(
      new CircuitOpenError({
        operation,
        attempt,
        safety: "never",
        code: "CIRCUIT_OPEN",
        message: `circuit breaker ${permit.state}: the database failed repeatedly; next probe in ${permit.retryAfterMs} ms`,
        cause: undefined,
        retryAfterMs: permit.retryAfterMs
      })
    )
  }
  guard.queryHealth.started(now)
  let promise: PromiseLike<A>
  try {
    promise = makePromise()
  } catch (error) {
    // A query function that throws instead of returning its promise failed
    // this attempt; settling it through the same path releases its permit.
    promise = Promise.reject(error)
  }
  settleWithTimeout(
    guard.timer,
    promise,
    timeoutMs,
    operation,
    attempt,
    { started, guard, permit, generation: guard.generation },
    onSuccess,
    onFailure
  )
}

/** `startGuardedAttempt` as an Effect. */
export const guardedAttempt = <A>(
  guard: Guard,
  makePromise: () => PromiseLike<A>,
  timeoutMs: number,
  operation: string,
  attempt: number,
  started: number,
  recover?: Recover<A>
): Effect.Effect<A, DatabaseError> =>
  Effect.callback<A, DatabaseError>((resume) =>
    startGuardedAttempt(
      guard,
      makePromise,
      timeoutMs,
      operation,
      attempt,
      started,
      (value) => resume(Effect.succeed(value)),
      (error) => resume(recover === undefined ? Effect.fail(error) : recover(error))
    )
  )

/** Records a whole operation's duration, retries included. */
export const recordDuration = (timer: Timer, operation: string, started: number) =>
  Metrics.record(Metrics.queryDuration, (timer.now() - started) / 1000, Metrics.operationLabels(operation))


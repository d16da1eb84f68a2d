/**
 * The one retry layer. A `Schedule` (data, testable with `TestClock`) decides
 * whether and when a failed database attempt runs again: a fixed list of
 * delays (default 500 ms then 1000 ms), only for errors whose retry is safe for
 * the operation, and never past the request's deadline.
 */
import {
  Clock,
  Config,
  Duration,
  Effect,
  FiberRef,
  Schedule,
  ScheduleDecision,
  ScheduleIntervals
} from "effect"
import {
  type DatabaseError,
  isRetrySafe,
  type OperationKind,
  RetryConfigError
} from "./Errors.js"
import { attemptTimeout, deadlineOf, maxAttempts, type RetryConfig, worstCase } from "@prisma-resilience/kernel/retryPolicy"
import { describe } from "@prisma-resilience/kernel/describe"
import * as Metrics from "./Metrics.js"
import * as Setting from "./Setting.js"

export { attemptTimeout, deadlineOf, defaults, maxAttempts, type RetryConfig, worstCase } from "@prisma-resilience/kernel/retryPolicy"

/**
 * Reads the policy from the environment: `DB_RETRY_DELAYS_MS` (default
 * `500,1000`), `DB_ATTEMPT_TIMEOUT_MS` (2000), `DB_REQUEST_BUDGET_MS` (9000),
 * `DB_WARMUP_WAIT_MS` (1500), `DB_RETRY_JITTER` (false).
 */
export const config: Config.Config<RetryConfig> = Setting.group("retry")

/**
 * The start-up check: fails when the worst case can exceed the request budget,
 * with a message that shows the arithmetic.
 */
export const validate = (config: RetryConfig): Effect.Effect<RetryConfig, RetryConfigError> => {
  const { arithmetic, totalMs } = worstCase(config)
  return totalMs <= config.requestBudgetMs
    ? Effect.succeed(config)
    : Effect.fail(
      new RetryConfigError({
        message: `retry policy can exceed the request budget: ${arithmetic} > DB_REQUEST_BUDGET_MS ${config.requestBudgetMs} ms; ` +
          "lower DB_ATTEMPT_TIMEOUT_MS, DB_RETRY_DELAYS_MS or DB_WARMUP_WAIT_MS, or raise DB_REQUEST_BUDGET_MS"
      })
    )
}

/**
 * The absolute deadline (epoch ms, on the Effect `Clock`) of the current
 * request, if one was set with `withBudget`.
 */
export const currentDeadline: FiberRef.FiberRef<number | undefined> = FiberRef.unsafeMake<number | undefined>(undefined)

/** Runs `self` with a deadline `budget` from now, or the current one if it is sooner. */
export const withBudget = (budget: Duration.DurationInput) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.flatMap(FiberRef.get(currentDeadline), (current) => {
      const deadline = now + Duration.toMillis(budget)
      return Effect.locally(self, currentDeadline, current === undefined ? deadline : Math.min(current, deadline))
    }))

/**
 * The retry schedule for one operation: outputs the delay before the next
 * attempt; continues only while the error is safe to retry for `kind` and the
 * next attempt would start before `deadlineMs`.
 */
export const schedule = (
  config: RetryConfig,
  options: { readonly kind: OperationKind; readonly deadlineMs: number }
): Schedule.Schedule<Duration.Duration, DatabaseError> => {
  const base: Schedule.Schedule<unknown> = config.delaysMs.length === 0
    ? Schedule.stop
    : Schedule.fromDelays(config.delaysMs[0]!, ...config.delaysMs.slice(1))
  const delays = Schedule.delays(config.jitter ? Schedule.jittered(base) : base)
  return delays.pipe(
    Schedule.whileInput((error: DatabaseError) => isRetrySafe(error, options.kind)),
    Schedule.checkEffect((_, delay) =>
      Effect.map(Clock.currentTimeMillis, (now) => now + Duration.toMillis(delay) < options.deadlineMs)
    )
  )
}

export interface AttemptInfo {
  /** 1-based */
  readonly attempt: number
  /** the attempt timeout, shortened so that the attempt ends by the deadline */
  readonly timeoutMs: number
}

export interface RetryOptions {
  readonly config: RetryConfig
  readonly operation: string
  readonly kind: OperationKind
}

/** @internal what the retry loop needs once the first attempt has failed */
export interface RetryContext extends RetryOptions {
  readonly deadlineMs: number
  /** the shared retry budget, consulted before each retry the schedule allows */
  readonly budget?: { readonly allowsRetry: () => boolean } | undefined
  /** whether the error was a wait for a connection of a pool that is full now: retrying would queue again */
  readonly overloaded?: ((error: DatabaseError) => boolean) | undefined
}

/**
 * @internal Drives the schedule after attempt 1 failed with `error`: logs each
 * retry with its delay, counts it, sleeps, runs the next attempt, and logs why
 * it gives up.
 */
export const continueAfter = <A, R>(
  error: DatabaseError,
  attempt: (info: AttemptInfo) => Effect.Effect<A, DatabaseError, R>,
  context: RetryContext
): Effect.Effect<A, DatabaseError, R> => {
  const { budget, config, deadlineMs, kind, operation, overloaded } = context
  const total = maxAttempts(config)
  const retrySchedule = schedule(config, { kind, deadlineMs })
  const giveUpReason = (error: DatabaseError, n: number, now: number): string => {
    if (error.safety === "never") return "not retryable"
    if (!isRetrySafe(error, kind)) return `not retried: ${error.safety} error on a ${kind}`
    if (n >= total) return "no retries left"
    return `not retried: request budget ends in ${Math.max(0, deadlineMs - now)} ms`
  }
  const afterFailure = (error: DatabaseError, n: number, state: unknown): Effect.Effect<A, DatabaseError, R> =>
    // Failing fast is the breaker's job; its transitions are logged, not every rejection.
    error._tag === "CircuitOpenError" ? Effect.fail(error) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(
        retrySchedule.step(now, error, state),
        ([next, _delay, decision]): Effect.Effect<A, DatabaseError, R> => {
          if (ScheduleDecision.isDone(decision)) {
            // A non-retryable error (a unique violation, a missing row) is an
            // answer of a working database, usually an expected outcome for the
            // caller: not a failed attempt to warn about.
            const log = error.safety === "never"
              ? Effect.logDebug(`${operation} attempt ${n}/${total}: ${describe(error)}, ${giveUpReason(error, n, now)}`)
              : Effect.logWarning(`${operation} attempt ${n}/${total} failed: ${describe(error)}, ${giveUpReason(error, n, now)}`)
            return Effect.zipRight(log, Effect.fail(error))
          }
          if (overloaded?.(error)) {
            return Effect.zipRight(
              Effect.logWarning(
                `${operation} attempt ${n}/${total} failed: ${describe(error)}, not retried: the connection pool is full; another attempt would queue behind the same connections`
              ),
              Effect.fail(error)
            )
          }
          if (budget !== undefined && !budget.allowsRetry()) {
            Metrics.retriesRefused.unsafeUpdate(1, Metrics.operationLabels(operation))
            return Effect.zipRight(
              Effect.logWarning(
                `${operation} attempt ${n}/${total} failed: ${describe(error)}, not retried: retry budget exhausted`
              ),
              Effect.fail(error)
            )
          }
          const waitMs = Math.max(0, ScheduleIntervals.start(decision.intervals) - now)
          Metrics.queryRetries.unsafeUpdate(1, Metrics.retryLabels(operation, error._tag))
          return Effect.logWarning(`${operation} attempt ${n}/${total} failed: ${describe(error)}, retrying in ${waitMs} ms`).pipe(
            Effect.zipRight(Effect.sleep(Duration.millis(waitMs))),
            Effect.zipRight(Clock.currentTimeMillis),
            Effect.flatMap((at) => attempt({ attempt: n + 1, timeoutMs: attemptTimeout(config, deadlineMs, at) })),
            Effect.catchAll((e) => afterFailure(e, n + 1, next))
          )
        }
      ))
  return afterFailure(error, 1, retrySchedule.initial)
}

/**
 * Runs `attempt` and, only after it failed, drives the schedule. The success
 * path reads the deadline and the clock synchronously and creates no schedule,
 * driver or fiber.
 */
export const retry = <A, R>(
  attempt: (info: AttemptInfo) => Effect.Effect<A, DatabaseError, R>,
  options: RetryOptions & Pick<RetryContext, "budget" | "overloaded">
): Effect.Effect<A, DatabaseError, R> =>
  Effect.withFiberRuntime((fiber) => {
    const now = fiber.currentDefaultServices.unsafeMap.get(Clock.Clock.key).unsafeCurrentTimeMillis()
    const deadlineMs = deadlineOf(fiber.getFiberRef(currentDeadline), options.config, now)
    return Effect.catchAll(
      attempt({ attempt: 1, timeoutMs: attemptTimeout(options.config, deadlineMs, now) }),
      (error) => continueAfter(error, attempt, { ...options, deadlineMs })
    )
  })

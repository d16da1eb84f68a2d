/**
 * The retry loop behind `RetryPolicy.retry` and `Database.query`: entered
 * only after a first attempt failed, it steps the one retry `Schedule`,
 * consults the retry budget and the pool, logs each retry and why it gives
 * up, and runs the next attempt with the timeout left before the deadline.
 */
import { attemptTimeout, maxAttempts, type RetryConfig } from "@prisma-resilience/kernel/retryPolicy"
import { describe } from "@prisma-resilience/kernel/describe"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Pull from "effect/Pull"
import * as Schedule from "effect/Schedule"
import { type DatabaseError, isRetryable, type OperationKind } from "../Errors.js"
import * as Metrics from "./metrics.js"

/**
 * One attempt's number and timeout, given to the attempt by `retry`.
 *
 * @since 0.1.0
 */
export interface AttemptInfo {
  /** 1-based */
  readonly attempt: number
  /** the attempt timeout, shortened so that the attempt ends by the deadline */
  readonly timeoutMs: number
}

/**
 * What `retry` needs to know of the operation: the policy, its name for logs
 * and metrics, and what it does (which decides whether an ambiguous failure
 * may be retried).
 *
 * @since 0.1.0
 */
export interface RetryOptions {
  readonly config: RetryConfig
  readonly operation: string
  readonly kind: OperationKind
}

/**
 * The retry schedule for one operation: outputs the delay before the next
 * attempt; continues only while the error is safe to retry for `kind` and the
 * next attempt would start before `deadlineMs`.
 *
 * @since 0.1.0
 */
export const schedule = (
  config: RetryConfig,
  options: { readonly kind: OperationKind; readonly deadlineMs: number }
): Schedule.Schedule<Duration.Duration, DatabaseError> => {
  // Effect 4 has no Schedule.fromDelays: the step walks the configured delays.
  const base = Schedule.fromStep(Effect.sync(() => {
    let n = 0
    return (_now: number, _error: DatabaseError): Pull.Pull<[Duration.Duration, Duration.Duration], never, Duration.Duration> => {
      const delayMs = config.delaysMs[n++]
      return delayMs === undefined ? Cause.done(Duration.zero) : Effect.succeed([Duration.millis(delayMs), Duration.millis(delayMs)])
    }
  }))
  return (config.jitter ? Schedule.jittered(base) : base).pipe(
    Schedule.while(({ duration, input, now }) =>
      isRetryable(input, options.kind) && now + Duration.toMillis(duration) < options.deadlineMs
    )
  )
}

/** What the retry loop needs once the first attempt has failed. */
export interface RetryContext extends RetryOptions {
  readonly deadlineMs: number
  /** the shared retry budget, consulted before each retry the schedule allows */
  readonly budget?: { readonly allowsRetry: () => boolean } | undefined
  /** whether the error was a wait for a connection of a pool that is full now: retrying would queue again */
  readonly overloaded?: ((error: DatabaseError) => boolean) | undefined
}

/**
 * Drives the schedule after attempt 1 failed with `error`: logs each
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
    if (!isRetryable(error, kind)) return `not retried: ${error.safety} error on a ${kind}`
    if (n >= total) return "no retries left"
    return `not retried: request budget ends in ${Math.max(0, deadlineMs - now)} ms`
  }
  type Step = (now: number, error: DatabaseError) => Effect.Effect<Duration.Duration | undefined>
  const afterFailure = (error: DatabaseError, n: number, step: Step): Effect.Effect<A, DatabaseError, R> =>
    // Failing fast is the breaker's job; its transitions are logged, not every rejection.
    error._tag === "CircuitOpenError" ? Effect.fail(error) : Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(
        step(now, error),
        (delay): Effect.Effect<A, DatabaseError, R> => {
          if (delay === undefined) {
            // A non-retryable error (a unique violation, a missing row) is an
            // answer of a working database, usually an expected outcome for the
            // caller: not a failed attempt to warn about.
            const log = error.safety === "never"
              ? Effect.logDebug(`${operation} attempt ${n}/${total}: ${describe(error)}, ${giveUpReason(error, n, now)}`)
              : Effect.logWarning(`${operation} attempt ${n}/${total} failed: ${describe(error)}, ${giveUpReason(error, n, now)}`)
            return Effect.andThen(log, Effect.fail(error))
          }
          if (overloaded?.(error)) {
            return Effect.andThen(
              Effect.logWarning(
                `${operation} attempt ${n}/${total} failed: ${describe(error)}, not retried: the connection pool is full; another attempt would queue behind the same connections`
              ),
              Effect.fail(error)
            )
          }
          if (budget !== undefined && !budget.allowsRetry()) {
            Metrics.record(Metrics.retriesRefused, 1, Metrics.operationLabels(operation))
            return Effect.andThen(
              Effect.logWarning(
                `${operation} attempt ${n}/${total} failed: ${describe(error)}, not retried: retry budget exhausted`
              ),
              Effect.fail(error)
            )
          }
          const waitMs = Math.max(0, Math.round(Duration.toMillis(delay)))
          Metrics.record(Metrics.queryRetries, 1, Metrics.retryLabels(operation, error._tag))
          return Effect.logWarning(`${operation} attempt ${n}/${total} failed: ${describe(error)}, retrying in ${waitMs} ms`).pipe(
            Effect.andThen(Effect.sleep(Duration.millis(waitMs))),
            Effect.andThen(Clock.currentTimeMillis),
            Effect.flatMap((at) => attempt({ attempt: n + 1, timeoutMs: attemptTimeout(config, deadlineMs, at) })),
            Effect.catch((e) => afterFailure(e, n + 1, step))
          )
        }
      ))
  return Effect.flatMap(Schedule.toStep(retrySchedule), (pull) =>
    afterFailure(error, 1, (now, e) =>
      Pull.catchDone(Effect.map(pull(now, e), ([, delay]) => delay), () => Effect.succeed(undefined))))
}


/**
 * The one retry layer. A `Schedule` (data, testable with `TestClock`) decides
 * whether and when a failed database attempt runs again: a fixed list of
 * delays (default 500 ms then 1000 ms), only for errors whose retry is safe for
 * the operation, and never past the request's deadline.
 */
import { attemptTimeout, deadlineOf, type RetryConfig, worstCase } from "@prisma-resilience/kernel/retryPolicy"
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type DatabaseError, RetryConfigError } from "./Errors.js"
import { type AttemptInfo, continueAfter, type RetryContext, type RetryOptions } from "./internal/retryLoop.js"
import * as Setting from "./internal/settingConfig.js"

export { type AttemptInfo, type RetryOptions, schedule } from "./internal/retryLoop.js"

export { attemptTimeout, deadlineOf, defaults, maxAttempts, type RetryConfig, worstCase } from "@prisma-resilience/kernel/retryPolicy"

/**
 * Reads the policy from the environment: `DB_RETRY_DELAYS_MS` (default
 * `500,1000`), `DB_ATTEMPT_TIMEOUT_MS` (2000), `DB_REQUEST_BUDGET_MS` (9000),
 * `DB_WARMUP_WAIT_MS` (1500), `DB_RETRY_JITTER` (false).
 *
 * @since 0.1.0
 */
export const config: Config.Config<RetryConfig> = Setting.group("retry")

/**
 * The start-up check: fails when the worst case can exceed the request budget,
 * with a message that shows the arithmetic.
 *
 * @since 0.1.0
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
 *
 * @since 0.1.0
 */
export const currentDeadline: Context.Reference<number | undefined> = Context.Reference<number | undefined>(
  "@prisma-resilience/core/RetryPolicy/currentDeadline",
  { defaultValue: () => undefined }
)

/**
 * Runs `self` with a deadline `budget` from now, or the current one if it is sooner.
 *
 * @since 0.1.0
 */
export const withBudget = (budget: Duration.Input) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.flatMap(currentDeadline, (current) => {
      const deadline = now + Duration.toMillis(budget)
      return Effect.provideService(self, currentDeadline, current === undefined ? deadline : Math.min(current, deadline))
    }))

/**
 * Runs `attempt` and, only after it failed, drives the schedule. The success
 * path reads the deadline and the clock synchronously and creates no schedule,
 * driver or fiber.
 *
 * @since 0.1.0
 */
export const retry = <A, R>(
  attempt: (info: AttemptInfo) => Effect.Effect<A, DatabaseError, R>,
  options: RetryOptions & Pick<RetryContext, "budget" | "overloaded">
): Effect.Effect<A, DatabaseError, R> =>
  Effect.withFiber((fiber) => {
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    const deadlineMs = deadlineOf(fiber.getRef(currentDeadline), options.config, now)
    return Effect.catch(
      attempt({ attempt: 1, timeoutMs: attemptTimeout(options.config, deadlineMs, now) }),
      (error) => continueAfter(error, attempt, { ...options, deadlineMs })
    )
  })

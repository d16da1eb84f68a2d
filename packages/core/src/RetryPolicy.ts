/**
 * The one retry layer. A `Schedule` (data, testable with `TestClock`) decides
 * whether and when a failed database attempt runs again: a fixed list of
 * delays (default 500 ms then 1000 ms), only for errors whose retry is safe for
 * the operation, and never past the request's deadline.
 */
import type { RetryConfig } from "@prisma-resilience/kernel/retryPolicy"
import type * as Config from "effect/Config"
import * as Setting from "./internal/settingConfig.js"

export * from "./internal/policy.js"

/**
 * Reads the policy from the environment: `DB_RETRY_DELAYS_MS` (default
 * `500,1000`), `DB_ATTEMPT_TIMEOUT_MS` (2000), `DB_REQUEST_BUDGET_MS` (9000),
 * `DB_WARMUP_WAIT_MS` (1500), `DB_RETRY_JITTER` (false).
 *
 * @since 0.1.0
 */
export const config: Config.Config<RetryConfig> = Setting.group("retry")


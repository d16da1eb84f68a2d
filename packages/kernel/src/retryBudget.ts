/**
 * A retry budget after gRPC's retry throttling: a bucket of `maxTokens`; each
 * failed attempt of the retryable kind takes one token, each success gives
 * back `tokenRatio` of one, and retries are refused while the bucket holds
 * `maxTokens / 2` or less. An isolated failure still gets its retry; a
 * database that keeps failing gets about one attempt per request instead of
 * three. No Effect import: shared by every binding.
 *
 * @since 0.1.0
 */

/**
 * The budget's settings (`DB_RETRY_BUDGET_MAX_TOKENS`,
 * `DB_RETRY_BUDGET_TOKEN_RATIO`).
 *
 * @since 0.1.0
 */
export interface RetryBudgetConfig {
  /** bucket size; 0 disables the budget */
  readonly maxTokens: number
  /** tokens a success gives back, above 0 and at most 1 */
  readonly tokenRatio: number
}

/**
 * 10 tokens allow a burst of 5 failures before retries stop; a ratio of 0.1
 * refills one token per 10 successes, so retries resume once about 1 query in
 * 10 fails or fewer (the defaults of gRPC's examples, and Finagle's 10 %).
 *
 * @since 0.1.0
 */
export const defaults: RetryBudgetConfig = { maxTokens: 10, tokenRatio: 0.1 }

/**
 * One budget's bucket and its operations.
 *
 * @since 0.1.0
 */
export interface RetryBudget {
  readonly config: RetryBudgetConfig
  /** tokens in the bucket now */
  readonly tokens: () => number
  /** a successful attempt: gives back `tokenRatio` */
  readonly onSuccess: () => void
  /** a failed attempt of the retryable kind: takes one token */
  readonly onFailure: () => void
  /** whether a retry may start now */
  readonly allowsRetry: () => boolean
}

/**
 * A full bucket. Synchronous, so that the query path pays a field update, not
 * an Effect; `onChange` hears every new token count (the full one at once). A
 * `maxTokens` of 0 makes a budget that always allows a retry.
 *
 * @example
 * ```ts
 * import { RetryBudget } from "@prisma-resilience/kernel"
 *
 * const budget = RetryBudget.make() // 10 tokens, 0.1 back per success
 * for (let i = 0; i < 5; i++) budget.onFailure()
 * budget.tokens()      // 5
 * budget.allowsRetry() // false: retries need more than half the bucket
 * budget.onSuccess()
 * budget.allowsRetry() // true (5.1 tokens)
 * ```
 *
 * @since 0.1.0
 */
export const make = (config: RetryBudgetConfig = defaults, onChange: (tokens: number) => void = () => {}): RetryBudget => {
  const enabled = config.maxTokens > 0
  let tokens = config.maxTokens
  const threshold = config.maxTokens / 2
  const publish = () => onChange(tokens)
  publish()
  return {
    config,
    tokens: () => tokens,
    onSuccess: () => {
      if (!enabled || tokens >= config.maxTokens) return
      tokens = Math.min(config.maxTokens, tokens + config.tokenRatio)
      publish()
    },
    onFailure: () => {
      if (!enabled) return
      tokens = Math.max(0, tokens - 1)
      publish()
    },
    allowsRetry: () => !enabled || tokens > threshold
  }
}

/**
 * A retry budget shared by every query of one `Database`, after gRPC's retry
 * throttling: a bucket of `maxTokens`; each failed attempt of the retryable
 * kind takes one token, each success gives back `tokenRatio` of one, and
 * retries are refused while the bucket holds `maxTokens / 2` or less. An
 * isolated failure still gets its retry; a database that keeps failing gets
 * about one attempt per request instead of three.
 */
import { Config } from "effect"
import * as Metrics from "./Metrics.js"

export interface RetryBudgetConfig {
  /** DB_RETRY_BUDGET_MAX_TOKENS, default 10; 0 disables the budget */
  readonly maxTokens: number
  /** DB_RETRY_BUDGET_TOKEN_RATIO, default 0.1: tokens a success gives back */
  readonly tokenRatio: number
}

/**
 * 10 tokens allow a burst of 5 failures before retries stop; a ratio of 0.1
 * refills one token per 10 successes, so retries resume once about 1 query in
 * 10 fails or fewer (the defaults of gRPC's examples, and Finagle's 10 %).
 */
export const defaults: RetryBudgetConfig = { maxTokens: 10, tokenRatio: 0.1 }

export const config: Config.Config<RetryBudgetConfig> = Config.all({
  maxTokens: Config.number("DB_RETRY_BUDGET_MAX_TOKENS").pipe(
    Config.validate({ message: "must be 0 (disabled) or a positive number", validation: (n) => n >= 0 }),
    Config.withDefault(defaults.maxTokens)
  ),
  tokenRatio: Config.number("DB_RETRY_BUDGET_TOKEN_RATIO").pipe(
    Config.validate({ message: "must be a number above 0 and at most 1", validation: (n) => n > 0 && n <= 1 }),
    Config.withDefault(defaults.tokenRatio)
  )
})

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

/** Synchronous, so that the query path pays a field update, not an Effect. */
export const make = (config: RetryBudgetConfig = defaults): RetryBudget => {
  const enabled = config.maxTokens > 0
  let tokens = config.maxTokens
  const threshold = config.maxTokens / 2
  const publish = () => Metrics.retryBudgetTokens.unsafeUpdate(tokens, [])
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

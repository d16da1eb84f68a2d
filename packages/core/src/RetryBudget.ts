/**
 * The retry budget shared by every query of one `Database` (gRPC-style retry
 * throttling; the state machine is `kernel/retryBudget`). This module reads
 * its settings and publishes `db_retry_budget_tokens`.
 */
import { Config, type MetricLabel } from "effect"
import * as Kernel from "./kernel/retryBudget.js"
import * as Metrics from "./Metrics.js"

export { defaults, type RetryBudget, type RetryBudgetConfig } from "./kernel/retryBudget.js"

/** DB_RETRY_BUDGET_MAX_TOKENS (default 10; 0 disables the budget), DB_RETRY_BUDGET_TOKEN_RATIO (default 0.1) */
export const config: Config.Config<Kernel.RetryBudgetConfig> = Config.all({
  maxTokens: Config.number("DB_RETRY_BUDGET_MAX_TOKENS").pipe(
    Config.validate({
      message: "must be 0 (disabled) or a positive finite number",
      validation: (n) => Number.isFinite(n) && n >= 0
    }),
    Config.withDefault(Kernel.defaults.maxTokens)
  ),
  tokenRatio: Config.number("DB_RETRY_BUDGET_TOKEN_RATIO").pipe(
    Config.validate({ message: "must be a number above 0 and at most 1", validation: (n) => n > 0 && n <= 1 }),
    Config.withDefault(Kernel.defaults.tokenRatio)
  )
})

/** A budget whose tokens are published to `db_retry_budget_tokens` under `labels`. */
export const make = (
  config: Kernel.RetryBudgetConfig = Kernel.defaults,
  labels: ReadonlyArray<MetricLabel.MetricLabel> = []
): Kernel.RetryBudget => Kernel.make(config, (tokens) => Metrics.retryBudgetTokens.unsafeUpdate(tokens, labels))

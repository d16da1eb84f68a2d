/**
 * The retry budget shared by every query of one `Database` (gRPC-style retry
 * throttling; the state machine is `kernel/retryBudget`). This module reads
 * its settings and publishes `db_retry_budget_tokens`.
 */
import { Config, type MetricLabel } from "effect"
import * as Kernel from "@prisma-resilience/kernel/retryBudget"
import * as Metrics from "./Metrics.js"
import * as Setting from "./Setting.js"

export { defaults, type RetryBudget, type RetryBudgetConfig } from "@prisma-resilience/kernel/retryBudget"

/** DB_RETRY_BUDGET_MAX_TOKENS (default 10; 0 disables the budget), DB_RETRY_BUDGET_TOKEN_RATIO (default 0.1) */
export const config: Config.Config<Kernel.RetryBudgetConfig> = Setting.group("retryBudget")

/** A budget whose tokens are published to `db_retry_budget_tokens` under `labels`. */
export const make = (
  config: Kernel.RetryBudgetConfig = Kernel.defaults,
  labels: ReadonlyArray<MetricLabel.MetricLabel> = []
): Kernel.RetryBudget => Kernel.make(config, (tokens) => Metrics.retryBudgetTokens.unsafeUpdate(tokens, labels))

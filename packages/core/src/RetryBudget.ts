/**
 * The retry budget's settings. One budget is shared by every query of one
 * `Database` (gRPC-style retry throttling): each success adds `tokenRatio`
 * of a token up to `maxTokens`, each failure takes one, and retries are
 * refused while half the tokens or fewer are left, so that an outage is not
 * multiplied by retries. Its tokens are published as
 * `db_retry_budget_tokens`. The state machine is
 * `@prisma-resilience/kernel/retryBudget`.
 *
 * @since 0.1.0
 */
import type { RetryBudgetConfig } from "@prisma-resilience/kernel/retryBudget"
import type * as Config from "effect/Config"
import * as Setting from "./internal/settingConfig.js"

export {
  /**
   * `maxTokens` 10, `tokenRatio` 0.1.
   *
   * @since 0.1.0
   */
  defaults,
  /**
   * The budget's settings: `maxTokens` (0 disables it) and `tokenRatio`.
   *
   * @since 0.1.0
   */
  type RetryBudgetConfig
} from "@prisma-resilience/kernel/retryBudget"

/**
 * DB_RETRY_BUDGET_MAX_TOKENS (default 10; 0 disables the budget),
 * DB_RETRY_BUDGET_TOKEN_RATIO (default 0.1).
 *
 * @since 0.1.0
 */
export const config: Config.Config<RetryBudgetConfig> = Setting.group("retryBudget")

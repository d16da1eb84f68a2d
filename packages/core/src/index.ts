/**
 * @prisma-resilience/core: warm-up as a scoped layer, one typed retry
 * schedule, health that requires warm-up, and the metrics to watch them.
 */
export * as CircuitBreaker from "./CircuitBreaker.js"
export { classify, type ClassifyContext } from "./Classify.js"
export {
  Database,
  type DatabaseService,
  type DatabaseState,
  type IsolationLevel,
  type LayerOptions,
  poolConfig,
  type PoolSettings,
  type PoolStats,
  type PrismaClientLike,
  type QueryOptions,
  type TransactionClient,
  type TransactionOptions,
  warmupConfig,
  type WarmupConfig,
  type WarmupInfo
} from "./Database.js"
export * from "./Errors.js"
export * from "./Health.js"
export * as Metrics from "./Metrics.js"
export * as RetryBudget from "./RetryBudget.js"
export * as RetryPolicy from "./RetryPolicy.js"

/**
 * @prisma-resilience/core: warm-up as a scoped layer, one typed retry
 * schedule, health that requires warm-up, and the metrics to watch them.
 */
export * as CircuitBreaker from "./CircuitBreaker.js"
export { classify, type ClassifyContext } from "./Classify.js"
export {
  config as databaseConfig,
  Database,
  type DatabaseService,
  type DatabaseState,
  type DatabaseTag,
  type HealthConfig,
  defaults as databaseDefaults,
  type IsolationLevel,
  type LayerOptions,
  type PoolSettings,
  type PoolStats,
  type PrismaClientLike,
  type QueryOptions,
  type Settings,
  connectionConfig,
  type TopologyConfig,
  type TransactionClient,
  type TransactionOptions,
  type WarmupConfig,
  type WarmupInfo
} from "./Database.js"
export type { ServerTimeoutConfig } from "./Database.js"
export * from "./Errors.js"
export * from "./Health.js"
export * as Metrics from "./Metrics.js"
export * as RetryBudget from "./RetryBudget.js"
export * as RetryPolicy from "./RetryPolicy.js"
export * as Setting from "./Setting.js"
export { classificationOf, createResilientPrisma, type ResilientPrisma, type ResilientPrismaOptions } from "./ResilientPrisma.js"

/**
 * A `Database`'s settings: the documented defaults, the `Config` that reads
 * each from its `DB_*` variable (and DATABASE_URL, DATABASE_REPLICA_URLS),
 * and how options given in code are laid over them.
 *
 * @since 0.2.0
 */
import { Config, type Option, type Redacted } from "effect"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type {
  HealthConfig,
  LayerOptions,
  PoolSettings,
  PrismaClientLike,
  ServerTimeoutConfig,
  Settings,
  TopologyConfig,
  WarmupConfig
} from "./DatabaseService.js"
import * as QueryHealth from "./kernel/queryHealth.js"
import * as RetryBudget from "./RetryBudget.js"
import * as RetryPolicy from "./RetryPolicy.js"
import * as Setting from "./Setting.js"

/** The pool settings' defaults (DB_POOL_MAX 10, DB_CONNECT_TIMEOUT_MS 2000, DB_POOL_IDLE_TIMEOUT_MS 10000). @since 0.1.0 */
export const poolDefaults: PoolSettings = { max: 10, connectionTimeoutMillis: 2000, idleTimeoutMillis: 10_000 }

/** Server-side limits on by default, 100 ms inside the attempt timeout. @since 0.1.0 */
export const serverTimeoutDefaults: ServerTimeoutConfig = { enabled: true, marginMs: 100 }

/** The warm-up's defaults (see `WarmupConfig`). @since 0.1.0 */
export const warmupDefaults: WarmupConfig = {
  timeoutMs: 30_000,
  attemptTimeoutMs: 5000,
  backoffMs: 100,
  backoffMaxMs: 1000,
  healthTimeoutMs: 1000,
  shutdownTimeoutMs: 5000
}

/** DB_POOL_MAX, DB_CONNECT_TIMEOUT_MS, DB_POOL_IDLE_TIMEOUT_MS */
export const poolConfig: Config.Config<PoolSettings> = Config.all({
  max: Setting.integer("DB_POOL_MAX", poolDefaults.max, { min: 1, range: "a positive integer" }),
  connectionTimeoutMillis: Setting.milliseconds("DB_CONNECT_TIMEOUT_MS", poolDefaults.connectionTimeoutMillis),
  idleTimeoutMillis: Setting.milliseconds("DB_POOL_IDLE_TIMEOUT_MS", poolDefaults.idleTimeoutMillis)
})

/** DB_SERVER_TIMEOUTS, DB_SERVER_TIMEOUT_MARGIN_MS */
export const serverTimeoutConfig: Config.Config<ServerTimeoutConfig> = Config.all({
  enabled: Setting.boolean("DB_SERVER_TIMEOUTS", serverTimeoutDefaults.enabled),
  marginMs: Setting.milliseconds("DB_SERVER_TIMEOUT_MARGIN_MS", serverTimeoutDefaults.marginMs, 0)
})

/**
 * The server-side limits `policy` and `server` ask for, as `pg.Pool` settings;
 * none while `server.enabled` is off.
 */
export const serverLimits = (
  policy: RetryPolicy.RetryConfig,
  server: ServerTimeoutConfig
): Pick<PoolSettings, "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout"> => {
  if (!server.enabled) return {}
  const statement = Math.max(1, policy.attemptTimeoutMs - server.marginMs)
  return { statement_timeout: statement, lock_timeout: statement, idle_in_transaction_session_timeout: policy.attemptTimeoutMs }
}

/** DB_WARMUP_TIMEOUT_MS, DB_WARMUP_ATTEMPT_TIMEOUT_MS, DB_WARMUP_BACKOFF_MS, DB_WARMUP_BACKOFF_MAX_MS, DB_HEALTH_TIMEOUT_MS, DB_SHUTDOWN_TIMEOUT_MS */
export const warmupConfig: Config.Config<WarmupConfig> = Config.all({
  timeoutMs: Setting.milliseconds("DB_WARMUP_TIMEOUT_MS", warmupDefaults.timeoutMs),
  attemptTimeoutMs: Setting.milliseconds("DB_WARMUP_ATTEMPT_TIMEOUT_MS", warmupDefaults.attemptTimeoutMs),
  backoffMs: Setting.milliseconds("DB_WARMUP_BACKOFF_MS", warmupDefaults.backoffMs),
  backoffMaxMs: Setting.milliseconds("DB_WARMUP_BACKOFF_MAX_MS", warmupDefaults.backoffMaxMs),
  healthTimeoutMs: Setting.milliseconds("DB_HEALTH_TIMEOUT_MS", warmupDefaults.healthTimeoutMs),
  shutdownTimeoutMs: Setting.milliseconds("DB_SHUTDOWN_TIMEOUT_MS", warmupDefaults.shutdownTimeoutMs)
})

/** DB_REPLICA_MAX_LAG_MS 1000, DB_NODE_CHECK_INTERVAL_MS 1000. @since 0.1.0 */
export const topologyDefaults: TopologyConfig = { replicaMaxLagMs: 1000, nodeCheckIntervalMs: 1000 }

/** DB_REPLICA_MAX_LAG_MS (default 1000), DB_NODE_CHECK_INTERVAL_MS (default 1000) */
export const topologyConfig: Config.Config<TopologyConfig> = Config.all({
  replicaMaxLagMs: Setting.milliseconds("DB_REPLICA_MAX_LAG_MS", topologyDefaults.replicaMaxLagMs, 0),
  nodeCheckIntervalMs: Setting.milliseconds("DB_NODE_CHECK_INTERVAL_MS", topologyDefaults.nodeCheckIntervalMs)
})

/** DATABASE_URL and DATABASE_REPLICA_URLS (whitespace- or comma-separated), both optional. */
export const connectionConfig: Config.Config<{
  readonly url: Option.Option<Redacted.Redacted<string>>
  readonly replicaUrls: Option.Option<Redacted.Redacted<string>>
}> = Config.all({
  url: Config.option(Config.redacted("DATABASE_URL")),
  replicaUrls: Config.option(Config.redacted("DATABASE_REPLICA_URLS"))
})

/** DB_HEALTH_FAILED_QUERIES 3, DB_HEALTH_STALL_MS 1000. @since 0.1.0 */
export const healthDefaults: HealthConfig = QueryHealth.defaults

/** DB_HEALTH_FAILED_QUERIES (default 3; 0 disables), DB_HEALTH_STALL_MS (default 1000; 0 disables) */
export const healthConfig: Config.Config<HealthConfig> = Config.all({
  failedQueries: Setting.integer("DB_HEALTH_FAILED_QUERIES", healthDefaults.failedQueries, {
    min: 0,
    range: "0 (disabled) or a positive integer"
  }),
  stallMs: Setting.milliseconds("DB_HEALTH_STALL_MS", healthDefaults.stallMs, 0)
})

/** Every setting's documented default, as `make` and `layer` use them (no environment read). @since 0.1.0 */
export const defaults: Settings = {
  retry: RetryPolicy.defaults,
  warmup: warmupDefaults,
  pool: poolDefaults,
  serverTimeouts: serverTimeoutDefaults,
  retryBudget: RetryBudget.defaults,
  circuitBreaker: CircuitBreaker.defaults,
  health: healthDefaults,
  topology: topologyDefaults
}

/** Every `DB_*` setting, read from the environment and checked, with the documented defaults. */
export const config: Config.Config<Settings> = Config.all({
  retry: RetryPolicy.config,
  warmup: warmupConfig,
  pool: poolConfig,
  serverTimeouts: serverTimeoutConfig,
  retryBudget: RetryBudget.config,
  circuitBreaker: CircuitBreaker.config,
  health: healthConfig,
  topology: topologyConfig
})

/** The settings of `options`, with `base` for every one not given. */
export const resolveSettings = <C extends PrismaClientLike>(options: LayerOptions<C>, base: Settings): Settings => ({
  retry: { ...base.retry, ...options.retry },
  warmup: { ...base.warmup, ...options.warmup },
  pool: { ...base.pool, ...options.pool },
  serverTimeouts: { ...base.serverTimeouts, ...options.serverTimeouts },
  retryBudget: { ...base.retryBudget, ...options.retryBudget },
  circuitBreaker: { ...base.circuitBreaker, ...options.circuitBreaker },
  health: { ...base.health, ...options.health },
  topology: { ...base.topology, ...options.topology }
})

/**
 * Every setting of the resilience layer as data: its type, its documented
 * default, the `DB_*` variable it is read from and how a value of that
 * variable is checked. One table, read by every binding: core builds Effect
 * `Config`s from it, the Promise adapter and a plain Node program read the
 * environment with `fromEnv`, and both reject a bad value with the same
 * message (the variable, the allowed range and what was given).
 *
 * @since 0.2.0
 */
import type { CircuitBreakerConfig } from "./circuitBreaker.js"
import { defaults as circuitBreakerDefaults } from "./circuitBreaker.js"
import { defaults as healthDefaults, type QueryHealthConfig } from "./queryHealth.js"
import { defaults as retryBudgetDefaults, type RetryBudgetConfig } from "./retryBudget.js"
import { defaults as retryDefaults, type RetryConfig } from "./retryPolicy.js"

/**
 * The connection pool's settings, under `pg.Pool`'s names: what the client
 * factory is handed. The server-side limits (ms, under pg's own names; pg
 * sends them as startup parameters) are set from the attempt timeout while
 * DB_SERVER_TIMEOUTS is on, so that the server cancels a statement just
 * before the client gives up on it; a value given in `options.pool` wins.
 *
 * @since 0.1.0
 */
export interface PoolSettings {
  /** DB_POOL_MAX, default 10 */
  readonly max: number
  /** DB_CONNECT_TIMEOUT_MS, default 2000; never pg's wait-forever 0 */
  readonly connectionTimeoutMillis: number
  /** DB_POOL_IDLE_TIMEOUT_MS, default 10000 */
  readonly idleTimeoutMillis: number
  /** the attempt timeout less DB_SERVER_TIMEOUT_MARGIN_MS */
  readonly statement_timeout?: number
  /** the same as `statement_timeout`: a lock wait fails with 55P03 instead of 57014 */
  readonly lock_timeout?: number
  /** the attempt timeout: no transaction of the layer idles that long, a leaked one does */
  readonly idle_in_transaction_session_timeout?: number
  /**
   * The node to connect to, when the layer was given `url` (or read
   * DATABASE_URL): the writer a multi-host string leads to, a replica, or the
   * plain string as it is. Pass it to `PrismaPg`/`pg.Pool`; never log it.
   */
  readonly connectionString?: string
}

/**
 * The limits the server enforces on each attempt (see `PoolSettings`).
 *
 * @since 0.1.0
 */
export interface ServerTimeoutConfig {
  /**
   * DB_SERVER_TIMEOUTS, default true: hand `statement_timeout`, `lock_timeout`
   * and `idle_in_transaction_session_timeout` to the client factory. Turn it
   * off behind a pooler that refuses startup parameters; transactions still
   * set their own limit with `SET LOCAL`.
   */
  readonly enabled: boolean
  /**
   * DB_SERVER_TIMEOUT_MARGIN_MS, default 100: how much sooner than the client
   * the server cancels, so that the cancellation, not the client's timer, ends
   * the attempt and its connection is free before any retry starts.
   */
  readonly marginMs: number
}

/**
 * How the warm-up connects: its timeout, each attempt's, the backoff between
 * attempts, the health probe's timeout and the bound on `$disconnect`.
 *
 * @since 0.1.0
 */
export interface WarmupConfig {
  /** DB_WARMUP_TIMEOUT_MS, default 30000: the whole warm-up, all attempts */
  readonly timeoutMs: number
  /** DB_WARMUP_ATTEMPT_TIMEOUT_MS, default 5000: one connect + probe */
  readonly attemptTimeoutMs: number
  /** DB_WARMUP_BACKOFF_MS, default 100: first delay, doubled up to the cap */
  readonly backoffMs: number
  /** DB_WARMUP_BACKOFF_MAX_MS, default 1000 */
  readonly backoffMaxMs: number
  /** DB_HEALTH_TIMEOUT_MS, default 1000: the health probe's timeout */
  readonly healthTimeoutMs: number
  /** DB_SHUTDOWN_TIMEOUT_MS, default 5000: bound on `$disconnect` */
  readonly shutdownTimeoutMs: number
}

/**
 * How the layer watches the nodes of a multi-host string and its replicas.
 *
 * @since 0.1.0
 */
export interface TopologyConfig {
  /** DB_REPLICA_MAX_LAG_MS: a replica further behind the writer, or whose lag cannot be told, serves no reads */
  readonly replicaMaxLagMs: number
  /**
   * DB_NODE_CHECK_INTERVAL_MS: how often every node's role and WAL position
   * are read; with replicas at most a quarter of the lag limit (`Topology.checkIntervalMs`)
   */
  readonly nodeCheckIntervalMs: number
}

/**
 * What health learns from the queries themselves (see `QueryHealth`).
 *
 * @since 0.1.0
 */
export type HealthConfig = QueryHealthConfig

/**
 * Every setting of one database, resolved.
 *
 * @since 0.1.0
 */
export interface Settings {
  readonly retry: RetryConfig
  readonly warmup: WarmupConfig
  readonly pool: PoolSettings
  readonly serverTimeouts: ServerTimeoutConfig
  readonly retryBudget: RetryBudgetConfig
  readonly circuitBreaker: CircuitBreakerConfig
  readonly health: HealthConfig
  readonly topology: TopologyConfig
}

/**
 * Some settings of each group, as options given in code carry them.
 *
 * @since 0.2.0
 */
export type PartialSettings = { readonly [G in keyof Settings]?: Partial<Settings[G]> | undefined }

/**
 * Every setting's documented default.
 *
 * @since 0.1.0
 */
export const defaults: Settings = {
  retry: retryDefaults,
  warmup: {
    timeoutMs: 30_000,
    attemptTimeoutMs: 5000,
    backoffMs: 100,
    backoffMaxMs: 1000,
    healthTimeoutMs: 1000,
    shutdownTimeoutMs: 5000
  },
  pool: { max: 10, connectionTimeoutMillis: 2000, idleTimeoutMillis: 10_000 },
  serverTimeouts: { enabled: true, marginMs: 100 },
  retryBudget: retryBudgetDefaults,
  circuitBreaker: circuitBreakerDefaults,
  health: healthDefaults,
  topology: { replicaMaxLagMs: 1000, nodeCheckIntervalMs: 1000 }
}

/**
 * The settings of `options`, with `base` for every one not given.
 *
 * @since 0.2.0
 */
export const overlay = (base: Settings, options: PartialSettings): Settings => ({
  retry: { ...base.retry, ...options.retry },
  warmup: { ...base.warmup, ...options.warmup },
  pool: { ...base.pool, ...options.pool },
  serverTimeouts: { ...base.serverTimeouts, ...options.serverTimeouts },
  retryBudget: { ...base.retryBudget, ...options.retryBudget },
  circuitBreaker: { ...base.circuitBreaker, ...options.circuitBreaker },
  health: { ...base.health, ...options.health },
  topology: { ...base.topology, ...options.topology }
})

/**
 * The server-side limits `retry` and `server` ask for, as `pg.Pool`
 * settings; none while `server.enabled` is off.
 *
 * @since 0.2.0
 */
export const serverLimits = (
  retry: RetryConfig,
  server: ServerTimeoutConfig
): Pick<PoolSettings, "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout"> => {
  if (!server.enabled) return {}
  const statement = Math.max(1, retry.attemptTimeoutMs - server.marginMs)
  return { statement_timeout: statement, lock_timeout: statement, idle_in_transaction_session_timeout: retry.attemptTimeoutMs }
}

/**
 * A transaction's isolation level, under Prisma's names.
 *
 * @since 0.1.0
 */
export type IsolationLevel = "ReadUncommitted" | "ReadCommitted" | "RepeatableRead" | "Serializable"

/**
 * Prisma's own limits for one interactive-transaction attempt of
 * `timeoutMs`: they end just inside it (by the server margin), so that Prisma
 * rolls the transaction back before the attempt's timer fires, and the
 * attempt never outlives its timeout (no backstop beyond it: the request
 * budget's arithmetic has no such term).
 *
 * @since 0.2.0
 */
export const prismaLimits = (
  server: ServerTimeoutConfig,
  pool: PoolSettings,
  options: { readonly isolationLevel?: IsolationLevel | undefined; readonly maxWait?: number | undefined } | undefined,
  timeoutMs: number
) => {
  const inside = Math.max(1, timeoutMs - server.marginMs)
  return {
    isolationLevel: options?.isolationLevel,
    maxWait: Math.min(options?.maxWait ?? pool.connectionTimeoutMillis, inside),
    timeout: inside
  }
}

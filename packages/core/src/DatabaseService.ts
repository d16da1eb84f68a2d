/**
 * The types a `Database` is made of and offers: the service itself, its
 * options and settings, and what it needs of a Prisma client. Shared by the
 * layer (`Database`), its settings (`DatabaseConfig`), health and the
 * Promise adapter, so that none of them imports another's implementation.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as CircuitBreaker from "@prisma-resilience/kernel/circuitBreaker"
import type { DatabaseError, NodeHealth, OperationKind } from "./Errors.js"
import type * as QueryHealth from "@prisma-resilience/kernel/queryHealth"
import type { RetryBudgetConfig } from "@prisma-resilience/kernel/retryBudget"
import type { RetryConfig } from "@prisma-resilience/kernel/retryPolicy"
import type {
  HealthConfig,
  IsolationLevel,
  PoolSettings,
  ServerTimeoutConfig,
  TopologyConfig,
  WarmupConfig
} from "@prisma-resilience/kernel/settings"

export type {
  HealthConfig,
  IsolationLevel,
  PoolSettings,
  ServerTimeoutConfig,
  Settings,
  TopologyConfig,
  WarmupConfig
} from "@prisma-resilience/kernel/settings"

/**
 * What the layer needs of a Prisma client; `PrismaClient` satisfies it.
 *
 * @since 0.1.0
 */
export interface PrismaClientLike {
  $connect(): Promise<void>
  $disconnect(): Promise<void>
  $queryRaw(query: TemplateStringsArray, ...values: Array<any>): PromiseLike<unknown>
  $transaction(...args: Array<any>): PromiseLike<unknown>
}

/**
 * The client Prisma hands an interactive transaction function.
 *
 * @since 0.1.0
 */
export type TransactionClient<C> = C extends { $transaction(fn: (tx: infer T) => Promise<any>, ...rest: any): any } ? T
  : never

/**
 * The pool's counts, read by `LayerOptions.poolStats`, for the pool gauges and
 * to tell a full pool from a slow server.
 *
 * @since 0.1.0
 */
export interface PoolStats {
  readonly totalCount: number
  readonly idleCount: number
  readonly waitingCount: number
}

/**
 * Options of one `query`: its name, what it does (inferred from the calls it
 * makes when not given), overrides of the retry policy, and whether a replica
 * may serve it.
 *
 * @since 0.1.0
 */
export interface QueryOptions {
  /** names the query in logs, spans and metrics; recorded from the client call when omitted */
  readonly operation?: string
  /**
   * `read` retries after ambiguous errors; `write` does not; `idempotent-write`
   * (e.g. an upsert keyed by an idempotency key) does. Inferred from the Prisma
   * method when omitted: find*, count, aggregate, groupBy, $queryRaw are reads.
   */
  readonly kind?: Exclude<OperationKind, "transaction">
  /**
   * overrides of the layer's retry policy for this call; an attempt timeout
   * other than the layer's brings its own server-side limit (a one-statement
   * transaction with `SET LOCAL`, three more round trips) when `f` returns a
   * Prisma promise
   */
  readonly retry?: Partial<RetryConfig>
  /**
   * Lets a read go to a replica (`replicaUrls`) that is up and within
   * DB_REPLICA_MAX_LAG_MS; to the writer when none is, when this fiber wrote
   * before (read-your-writes), or when the replica's attempt fails. A write
   * ignores it.
   */
  readonly replica?: boolean
}

/**
 * Options of one `transaction`: its name, isolation level, wait for a
 * connection, whether it is idempotent, retry overrides, and whether a
 * replica may serve it (read-only).
 *
 * @since 0.1.0
 */
export interface TransactionOptions {
  readonly operation?: string
  readonly isolationLevel?: IsolationLevel
  /** ms to wait for a connection to start the transaction (Prisma's maxWait) */
  readonly maxWait?: number
  /**
   * The function is re-run whole on conflicts, and when the connection failed
   * before COMMIT or `txid_status` says the COMMIT was rolled back. Declare it
   * idempotent to have it re-run also when the commit outcome stays unknown.
   */
  readonly idempotent?: boolean
  readonly retry?: Partial<RetryConfig>
  /** A read-only transaction that may run on a replica, as `QueryOptions.replica`; one attempt there, then the writer. */
  readonly replica?: boolean
}

/**
 * How long the warm-up took and how many attempts it made.
 *
 * @since 0.1.0
 */
export interface WarmupInfo {
  readonly durationMs: number
  readonly attempts: number
}

/**
 * `shutting_down` once `beginShutdown` ran: health fails, queries still work.
 *
 * @since 0.1.0
 */
export type DatabaseState = "serving" | "shutting_down"

/**
 * The service a `Database` layer provides, typed by its client `C`: queries
 * and transactions through the resilience layer, the probe health uses, and
 * the state health and metrics read.
 *
 * @example
 * ```ts
 * const orders = Effect.flatMap(Database, (db) => db.query((c) => c.purchaseOrder.findMany({ take: 10 })))
 * ```
 *
 * @since 0.1.0
 */
export interface DatabaseService<C = any> {
  /**
   * Runs `f` (which returns a Prisma promise) with the attempt timeout,
   * classification and the retry policy; `f` runs again for each attempt.
   */
  readonly query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions) => Effect.Effect<A, DatabaseError>
  /**
   * An interactive transaction, run again whole on transaction conflicts. It
   * runs with a transaction-local limit (`SET LOCAL`) from what is left of its
   * attempt, and records its transaction id before COMMIT: when the
   * connection fails during COMMIT, `txid_status` decides. Committed: it
   * succeeds with the value `f` returned before COMMIT (nothing is run
   * again); rolled back: it runs again like a conflict; unknown: the
   * ambiguous error.
   */
  readonly transaction: <A>(
    f: (tx: TransactionClient<C>) => Promise<A>,
    options?: TransactionOptions
  ) => Effect.Effect<A, DatabaseError>
  /** One `SELECT 1` bounded by `timeoutMs`, no retry; succeeds with its latency in ms. */
  readonly ping: (timeoutMs?: number) => Effect.Effect<number, DatabaseError>
  /**
   * Health's probe: `ping` that takes the circuit breaker's half-open slot
   * when it is due (and fails with `CircuitOpenError`, sending nothing, while
   * the breaker is open), and that ends a spell of failed queries once it has
   * proved the query path works again, so health recovers with no other
   * traffic. See `internal/healthProbe`.
   */
  readonly probe: Effect.Effect<number, DatabaseError>
  readonly warmup: WarmupInfo
  readonly retryConfig: RetryConfig
  readonly warmupConfig: WarmupConfig
  readonly state: Effect.Effect<DatabaseState>
  /** Readiness turns false (health fails `shutting_down`) while queries still work. */
  readonly beginShutdown: Effect.Effect<void>
  /** Current pool counts, when the layer was given `poolStats`. */
  readonly poolStats: Effect.Effect<PoolStats | undefined>
  /** The circuit breaker's state now, and ms until it lets a probe through. */
  readonly circuit: Effect.Effect<{ readonly state: CircuitBreaker.State; readonly retryAfterMs: number }>
  /** Tokens left in the shared retry budget. */
  readonly retryBudgetTokens: Effect.Effect<number>
  /** Why the queries are not working now (consecutive failures, a stall), or undefined. */
  readonly queryPath: Effect.Effect<QueryHealth.Degraded | undefined>
  /** Every node with its role and lag, for a database with several (a multi-host URL, replicas); else undefined. */
  readonly nodes: Effect.Effect<ReadonlyArray<NodeHealth> | undefined>
}

/**
 * What `Database.layer`, `layerConfig` and `createResilientPrisma` take: the
 * client factory (hand it `pool` whole: it carries the connection string of
 * the node chosen), and overrides of any setting.
 *
 * @since 0.1.0
 */
export interface LayerOptions<C extends PrismaClientLike> {
  /** Builds a new client. Called again for each warm-up attempt after a failed one. */
  readonly client: (pool: PoolSettings) => C
  /** Reads pool counts from a client, for the pool gauges. */
  readonly poolStats?: (client: C) => PoolStats | undefined
  /**
   * Names this database in the labels of its gauges (`db_circuit_state`,
   * `db_retry_budget_tokens`, `db_ready`, pool gauges), so that two databases
   * of one process do not overwrite each other; default: the Tag's key.
   */
  readonly name?: string
  readonly retry?: Partial<RetryConfig>
  readonly warmup?: Partial<WarmupConfig>
  readonly pool?: Partial<PoolSettings>
  readonly serverTimeouts?: Partial<ServerTimeoutConfig>
  readonly retryBudget?: Partial<RetryBudgetConfig>
  readonly circuitBreaker?: Partial<CircuitBreaker.CircuitBreakerConfig>
  readonly health?: Partial<HealthConfig>
  /**
   * The connection string (`layerConfig`: DATABASE_URL). A plain one is handed
   * to `client` as `pool.connectionString` unchanged. One that lists several
   * hosts (`postgresql://app@127.0.0.1:5433,127.0.0.1:5434/app?target_session_attrs=read-write`)
   * makes the layer connect to the node libpq would choose, and with
   * `read-write` or `primary` find the new writer after a failover.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** Replicas for opted-in reads (`layerConfig`: DATABASE_REPLICA_URLS), one single-host string each. */
  readonly replicaUrls?: ReadonlyArray<string | Redacted.Redacted<string>> | undefined
  readonly topology?: Partial<TopologyConfig>
}

/**
 * What a passing health check reports.
 *
 * @since 0.1.0
 */
export interface HealthReport {
  readonly status: "pass"
  /** round trip of the `SELECT 1` probe */
  readonly latencyMs: number
  readonly warmupMs: number
  readonly warmupAttempts: number
  /** the nodes, for a database with several (a multi-host URL, replicas) */
  readonly nodes?: ReadonlyArray<NodeHealth> | undefined
}

/**
 * What a failed health check carries besides its reason and message (see
 * `healthFailure`).
 *
 * @since 0.2.0
 */
export interface HealthFailureDetails {
  /** the failure that made the check fail, classified */
  readonly cause?: DatabaseError | undefined
  /** how long the warm-up took, once it has finished */
  readonly warmupMs?: number | undefined
  /** when a retry of the check can pass: the breaker's next probe */
  readonly retryAfterMs?: number | undefined
  /** the nodes, for a database with several */
  readonly nodes?: ReadonlyArray<NodeHealth> | undefined
}

/**
 * The typed failures of the resilience layer. Every database failure is one of
 * the five `DatabaseError` classes; each says how safe it is to try again.
 */
import * as Data from "effect/Data"
import * as Predicate from "effect/Predicate"
import { isSafeToRetry, type OperationKind, type RetrySafety } from "@prisma-resilience/kernel/safety"

export type { OperationKind, RetrySafety } from "@prisma-resilience/kernel/safety"

interface Fields {
  /** e.g. `purchaseOrder.findUnique`; `unknown` when the caller named none */
  readonly operation: string
  /**
   * 1-based attempt on which this error happened; 0 when nothing was sent (the
   * Promise adapter's `WARMUP_WAIT`, `WARMUP_FAILED` and `DISCONNECTED`)
   */
  readonly attempt: number
  readonly safety: RetrySafety
  /** Prisma code (P2002), SQLSTATE (40001), adapter kind or errno code, when known */
  readonly code: string | undefined
  /** human readable and free of connection strings and passwords */
  readonly message: string
  readonly cause: unknown
}

/**
 * The server could not be reached or the connection broke: unreachable,
 * refused, too many connections, a pool wait (before-send), or closed
 * mid-query (ambiguous). See `safety`.
 *
 * @since 0.1.0
 */
export class ConnectionError extends Data.TaggedError("ConnectionError")<Fields> {}
/**
 * The engine answered with nothing ("Response from the Engine was empty"):
 * the query may have run (ambiguous).
 *
 * @since 0.1.0
 */
export class EmptyResponseError extends Data.TaggedError("EmptyResponseError")<Fields> {}
/**
 * An attempt ran out of time: the client's own timer (`ATTEMPT_TIMEOUT`), a
 * server cancellation (57014, 55P03) or a socket timeout (ambiguous), or a
 * wait for a pool connection (P2024, before-send).
 *
 * @since 0.1.0
 */
export class TimeoutError extends Data.TaggedError("TimeoutError")<Fields> {}
/**
 * A transaction conflict (40001, 40P01, P2034) or a closed transaction: the
 * server rolled it back, so the whole transaction function may run again.
 *
 * @since 0.1.0
 */
export class TransactionError extends Data.TaggedError("TransactionError")<Fields> {}
/**
 * An answer from a working database that the same request would get again
 * (a unique violation, a missing row, bad input, authentication, a missing
 * table): never retried; `code` carries Prisma's or PostgreSQL's code.
 *
 * @since 0.1.0
 */
export class QueryError extends Data.TaggedError("QueryError")<Fields> {}

/**
 * The circuit breaker is open: the attempt was not sent. `retryAfterMs` is the
 * time until the breaker lets a probe through. Never retried within a request.
 *
 * @since 0.1.0
 */
export class CircuitOpenError extends Data.TaggedError("CircuitOpenError")<Fields & {
  readonly retryAfterMs: number
}> {}

/**
 * Every error a query or transaction fails with; each carries `operation`,
 * `attempt`, `safety`, `code` and the original error as `cause`.
 *
 * @since 0.1.0
 */
export type DatabaseError =
  | ConnectionError
  | EmptyResponseError
  | TimeoutError
  | TransactionError
  | QueryError
  | CircuitOpenError

const databaseErrorTags: ReadonlySet<string> = new Set([
  "ConnectionError",
  "EmptyResponseError",
  "TimeoutError",
  "TransactionError",
  "QueryError",
  "CircuitOpenError"
])

/** Whether `u` is one of the `DatabaseError` classes. @since 0.1.0 */
export const isDatabaseError = (u: unknown): u is DatabaseError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && databaseErrorTags.has(u._tag)

/**
 * Whether a retry may follow this error. Without `kind`: whether the error is
 * of a transient kind at all. With the operation's `kind`: whether running it
 * again can neither duplicate a write nor repeat half a transaction — the
 * question the retry schedule asks (an ambiguous failure of a write is not
 * retryable; of a read it is).
 *
 * @example
 * ```ts
 * import { isRetryable } from "@prisma-resilience/core"
 * isRetryable(error)          // a connection reset: true; a unique violation: false
 * isRetryable(error, "write") // the connection dropped after the INSERT was sent: false
 * ```
 *
 * @since 0.1.0
 */
export const isRetryable = (error: DatabaseError, kind?: OperationKind): boolean =>
  kind === undefined ? error.safety !== "never" : isSafeToRetry(error.safety, kind)

/**
 * Warm-up did not reach a working connection within its timeout.
 *
 * @since 0.1.0
 */
export class WarmupError extends Data.TaggedError("WarmupError")<{
  readonly attempts: number
  readonly elapsedMs: number
  readonly message: string
  /** the last failure, classified */
  readonly cause: DatabaseError | undefined
  /** the nodes, for a database with several */
  readonly nodes?: ReadonlyArray<NodeHealth> | undefined
}> {}

/**
 * The retry configuration cannot keep its worst case inside the request budget.
 *
 * @since 0.1.0
 */
export class RetryConfigError extends Data.TaggedError("RetryConfigError")<{
  readonly message: string
}> {}

/**
 * Why health failed: `degraded` means `SELECT 1` may pass but the queries
 * themselves are failing or stalled (a lock, a missing table, a full pool);
 * `read_only` that the node the writes go to is in recovery (a demoted
 * primary answers `SELECT 1` and refuses every write).
 *
 * @since 0.1.0
 */
export type HealthFailureReason =
  | "warming"
  | "unreachable"
  | "timeout"
  | "shutting_down"
  | "circuit_open"
  | "degraded"
  | "read_only"

/**
 * One node of a database with several (a multi-host URL, replicas), as health reports it.
 *
 * @since 0.1.0
 */
export interface NodeHealth {
  /** `host:port` */
  readonly name: string
  /** what its last probe found; `unknown` before the first */
  readonly role: "primary" | "replica" | "unreachable" | "unknown"
  /** whether the layer writes to it (`writer`), may read from it (`replica`), or neither */
  readonly serves: "writer" | "replica" | "none"
  /**
   * for a node in recovery: how far behind the writer it is, in ms, at most
   * (the time since the writer's newest WAL position it is known to have
   * replayed); absent when that cannot be told
   */
  readonly lagMs?: number | undefined
  /**
   * for a node in recovery: whether its lag lets it serve opted-in reads,
   * `within` DB_REPLICA_MAX_LAG_MS, `over` it, or `unknown` (the writer was
   * not sampled recently, or the replica cannot give its replay position),
   * which counts as over
   */
  readonly lag?: "within" | "over" | "unknown" | undefined
  /** ms since its last probe */
  readonly checkedAgoMs?: number | undefined
  /** its replica circuit breaker, for a replica */
  readonly circuit?: "closed" | "open" | "half-open" | undefined
  /** its last probe's failure, credential-free */
  readonly error?: string | undefined
}

/**
 * A failed health check: `reason` (`warming`, `unreachable`, `timeout`,
 * `circuit_open`, `degraded`, `read_only`, `shutting_down`), a credential-free
 * message, and with `circuit_open` the time until the breaker's next probe.
 *
 * @since 0.1.0
 */
export class HealthError extends Data.TaggedError("HealthError")<{
  readonly reason: HealthFailureReason
  readonly message: string
  /** with `circuit_open`: ms until the breaker lets a probe through */
  readonly retryAfterMs?: number | undefined
  readonly latencyMs: number | undefined
  readonly warmupMs: number | undefined
  readonly cause: DatabaseError | undefined
  /** the nodes, for a database with several */
  readonly nodes?: ReadonlyArray<NodeHealth> | undefined
}> {}

/**
 * The typed failures of the resilience layer. Every database failure is one of
 * the five `DatabaseError` classes; each says how safe it is to try again.
 */
import { Data, Predicate } from "effect"

/**
 * When an operation that failed with this error may be run again.
 *
 * - `before-send`: the request never reached the server (unreachable, refused,
 *   too many connections, pool acquire timeout): safe for reads and writes.
 * - `ambiguous`: the server may have executed it (connection closed mid-query,
 *   socket timeout, empty response, commit outcome unknown): safe for reads and
 *   for writes declared idempotent only.
 * - `transaction`: the server rolled the transaction back (serialization
 *   failure, deadlock): safe to run the whole transaction again.
 * - `never`: the same request will fail the same way (constraint violation,
 *   bad input, authentication, missing table).
 */
export type RetrySafety = "before-send" | "ambiguous" | "transaction" | "never"

/**
 * What an operation does, which decides whether an `ambiguous` error may be
 * retried. A `query` is a single statement (its own implicit transaction); a
 * `transaction` is a whole interactive transaction function.
 */
export type OperationKind = "read" | "write" | "idempotent-write" | "transaction"

interface Fields {
  /** e.g. `purchaseOrder.findUnique`; `unknown` when the caller named none */
  readonly operation: string
  /** 1-based attempt on which this error happened */
  readonly attempt: number
  readonly safety: RetrySafety
  /** Prisma code (P2002), SQLSTATE (40001), adapter kind or errno code, when known */
  readonly code: string | undefined
  /** human readable and free of connection strings and passwords */
  readonly message: string
  readonly cause: unknown
}

export class ConnectionError extends Data.TaggedError("ConnectionError")<Fields> {}
export class EmptyResponseError extends Data.TaggedError("EmptyResponseError")<Fields> {}
export class TimeoutError extends Data.TaggedError("TimeoutError")<Fields> {}
export class TransactionError extends Data.TaggedError("TransactionError")<Fields> {}
export class QueryError extends Data.TaggedError("QueryError")<Fields> {}

/**
 * The circuit breaker is open: the attempt was not sent. `retryAfterMs` is the
 * time until the breaker lets a probe through. Never retried within a request.
 */
export class CircuitOpenError extends Data.TaggedError("CircuitOpenError")<Fields & {
  readonly retryAfterMs: number
}> {}

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

export const isDatabaseError = (u: unknown): u is DatabaseError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && databaseErrorTags.has(u._tag)

/** Whether the error is of a transient kind at all (ignoring what the operation was). */
export const isRetryable = (error: DatabaseError): boolean => error.safety !== "never"

/**
 * Whether running the operation again after this error can neither duplicate a
 * write nor repeat half a transaction.
 */
export const isRetrySafe = (error: DatabaseError, kind: OperationKind): boolean => {
  switch (error.safety) {
    case "before-send":
      return true
    case "ambiguous":
      return kind === "read" || kind === "idempotent-write"
    case "transaction":
      // A single statement that lost a serialization conflict was its own
      // transaction and was rolled back whole, so it may run again too.
      return true
    case "never":
      return false
  }
}

/** Warm-up did not reach a working connection within its timeout. */
export class WarmupError extends Data.TaggedError("WarmupError")<{
  readonly attempts: number
  readonly elapsedMs: number
  readonly message: string
  /** the last failure, classified */
  readonly cause: DatabaseError | undefined
}> {}

/** The retry configuration cannot keep its worst case inside the request budget. */
export class RetryConfigError extends Data.TaggedError("RetryConfigError")<{
  readonly message: string
}> {}

export type HealthFailureReason = "warming" | "unreachable" | "timeout" | "shutting_down" | "circuit_open"

export class HealthError extends Data.TaggedError("HealthError")<{
  readonly reason: HealthFailureReason
  readonly message: string
  /** with `circuit_open`: ms until the breaker lets a probe through */
  readonly retryAfterMs?: number | undefined
  readonly latencyMs: number | undefined
  readonly warmupMs: number | undefined
  readonly cause: DatabaseError | undefined
}> {}

/**
 * The error taxonomy as data: which signal of a thrown value (a Prisma 7
 * driver-adapter kind, a PostgreSQL SQLSTATE, a Prisma code, an engine or
 * driver message, an errno) means which error and how safe a retry is. Pure,
 * and free of any Effect import, so that every binding shares it.
 *
 * @since 0.1.0
 */
import type { RetrySafety } from "./safety.js"
import { summarize } from "./redact.js"

const isObject = (u: unknown): u is object => (typeof u === "object" && u !== null) || typeof u === "function"

/**
 * The `_tag` of the `DatabaseError` a verdict becomes.
 *
 * @since 0.1.0
 */
export type ErrorTag = "ConnectionError" | "EmptyResponseError" | "TimeoutError" | "TransactionError" | "QueryError"

/**
 * What a recognised signal means: which error it is and when a retry is safe.
 *
 * @since 0.1.0
 */
export interface Verdict {
  /** the kind of error */
  readonly tag: ErrorTag
  /** when the failed operation may be run again (see `isSafeToRetry`) */
  readonly safety: RetrySafety
  /** the code to report when the error itself carries none */
  readonly code?: string
}

const verdict = (tag: ErrorTag, safety: RetrySafety, code?: string): Verdict =>
  code === undefined ? { tag, safety } : { tag, safety, code }

/**
 * Waiting for a pooled connection timed out (Prisma's P2024, or pg-pool's
 * message): with a full pool that is the process's own overload, not the
 * database failing, so it must neither open the circuit nor be retried into
 * the same full queue.
 *
 * @since 0.1.0
 */
export const POOL_ACQUIRE_TIMEOUT = "POOL_ACQUIRE_TIMEOUT"

/**
 * Whether `code` is a wait for a pooled connection that timed out (see `POOL_ACQUIRE_TIMEOUT`).
 *
 * @since 0.1.0
 */
export const isPoolWait = (code: string | undefined): boolean => code === "P2024" || code === POOL_ACQUIRE_TIMEOUT

/**
 * Codes of a non-retryable error that no request can get past: the schema the
 * client expects is not there (a table or column missing). Unlike a unique
 * violation they are not an answer to one request but a broken query path.
 */
const brokenSchema: ReadonlySet<string> = new Set(["42P01", "42703", "3F000", "P2021", "P2022"])

/**
 * Whether `code` says the schema the client expects is missing (a table,
 * column or schema: 42P01, 42703, 3F000, P2021, P2022): every request on that
 * path fails alike, so health reports it rather than waiting for it to pass.
 *
 * @since 0.1.0
 */
export const isBrokenSchema = (code: string | undefined): boolean => code !== undefined && brokenSchema.has(code)

/**
 * The server cancelled the statement: 57014 (statement_timeout, or a cancel
 * request) or 55P03 (lock_timeout): unlike a client-side timeout, nothing of
 * the statement goes on running.
 *
 * @since 0.1.0
 */
export const isServerCancellation = (code: string | undefined): boolean => code === "57014" || code === "55P03"

/**
 * A pooler refused a startup parameter (PgBouncer, for any parameter it does
 * not know): the connection cannot carry server-side limits, only `SET LOCAL`
 * inside transactions can.
 *
 * @since 0.1.0
 */
export const isStartupParameterRejected = (message: string): boolean => /unsupported startup parameter/i.test(message)

/** Prisma 7 driver-adapter error kinds (`meta.driverAdapterError.cause.kind`). */
const adapterKinds: Readonly<Record<string, Verdict>> = {
  DatabaseNotReachable: verdict("ConnectionError", "before-send"),
  TooManyConnections: verdict("ConnectionError", "before-send"),
  ConnectionClosed: verdict("ConnectionError", "ambiguous"),
  TlsConnectionError: verdict("ConnectionError", "before-send"),
  SocketTimeout: verdict("TimeoutError", "ambiguous"),
  TransactionWriteConflict: verdict("TransactionError", "transaction"),
  TransactionAlreadyClosed: verdict("TransactionError", "transaction")
}

/**
 * PostgreSQL SQLSTATEs that are transient, after Npgsql's
 * `PostgresException.IsTransient`.
 */
const sqlStates: Readonly<Record<string, Verdict>> = {
  "08000": verdict("ConnectionError", "ambiguous"), // connection_exception
  "08001": verdict("ConnectionError", "before-send"), // sqlclient_unable_to_establish_sqlconnection
  "08003": verdict("ConnectionError", "ambiguous"), // connection_does_not_exist
  "08004": verdict("ConnectionError", "before-send"), // sqlserver_rejected_establishment_of_sqlconnection
  "08006": verdict("ConnectionError", "ambiguous"), // connection_failure
  "08007": verdict("ConnectionError", "ambiguous"), // transaction_resolution_unknown
  "57P01": verdict("ConnectionError", "ambiguous"), // admin_shutdown
  "57P02": verdict("ConnectionError", "ambiguous"), // crash_shutdown
  "57P03": verdict("ConnectionError", "before-send"), // cannot_connect_now
  "57P05": verdict("ConnectionError", "ambiguous"), // idle_session_timeout
  "25P03": verdict("ConnectionError", "ambiguous"), // idle_in_transaction_session_timeout ended the session
  // read_only_sql_transaction: the node is a standby or a demoted primary (a
  // failover happened). The statement was refused, not run: a retry, on the
  // writer once it is found again, is safe for reads and writes alike.
  "25006": verdict("ConnectionError", "before-send"),
  "53300": verdict("ConnectionError", "before-send"), // too_many_connections
  "40001": verdict("TransactionError", "transaction"), // serialization_failure
  "40P01": verdict("TransactionError", "transaction"), // deadlock_detected
  "57014": verdict("TimeoutError", "ambiguous"), // query_canceled (statement_timeout)
  "55P03": verdict("TimeoutError", "ambiguous"), // lock_not_available (lock_timeout)
  "53000": verdict("ConnectionError", "ambiguous"), // insufficient_resources
  "53100": verdict("ConnectionError", "ambiguous"), // disk_full
  "53200": verdict("ConnectionError", "ambiguous"), // out_of_memory
  "53400": verdict("ConnectionError", "ambiguous"), // configuration_limit_exceeded
  "55006": verdict("TransactionError", "ambiguous"), // object_in_use
  "58000": verdict("ConnectionError", "ambiguous"), // system_error
  "58030": verdict("ConnectionError", "ambiguous") // io_error
}

/** Prisma error codes that are transient. Everything else is a QueryError. */
const prismaCodes: Readonly<Record<string, Verdict>> = {
  P1001: verdict("ConnectionError", "before-send"), // can't reach database server
  P1002: verdict("TimeoutError", "ambiguous"), // database server timed out
  P1008: verdict("TimeoutError", "ambiguous"), // operations timed out
  P1017: verdict("ConnectionError", "ambiguous"), // server closed the connection
  P2024: verdict("TimeoutError", "before-send"), // timed out fetching a connection from the pool
  P2028: verdict("TransactionError", "transaction"), // transaction API error (expired, closed)
  P2034: verdict("TransactionError", "transaction"), // write conflict or deadlock
  P2037: verdict("ConnectionError", "before-send") // too many database connections
}

/** Node.js socket errno codes. */
const errnoCodes: Readonly<Record<string, Verdict>> = {
  ECONNREFUSED: verdict("ConnectionError", "before-send"),
  ENOTFOUND: verdict("ConnectionError", "before-send"),
  EAI_AGAIN: verdict("ConnectionError", "before-send"),
  EHOSTUNREACH: verdict("ConnectionError", "before-send"),
  ENETUNREACH: verdict("ConnectionError", "before-send"),
  ECONNRESET: verdict("ConnectionError", "ambiguous"),
  EPIPE: verdict("ConnectionError", "ambiguous"),
  ETIMEDOUT: verdict("TimeoutError", "ambiguous")
}

/** Message patterns, for errors that carry no code (Prisma 5/6 engines, pg). */
const messagePatterns: ReadonlyArray<readonly [RegExp, Verdict]> = [
  [/Engine is not yet connected/i, verdict("ConnectionError", "before-send")],
  [/Can't reach database server/i, verdict("ConnectionError", "before-send")],
  [/Response from the Engine was empty/i, verdict("EmptyResponseError", "ambiguous")],
  [/Timed out fetching a new connection/i, verdict("TimeoutError", "before-send")],
  // pg-pool's own timer: a wait for a free client of a full pool, or a new
  // connection that took too long; the pool's counts tell which.
  [/timeout exceeded when trying to connect/i, verdict("TimeoutError", "before-send", POOL_ACQUIRE_TIMEOUT)],
  [/Connection terminated due to connection timeout/i, verdict("TimeoutError", "before-send")],
  [/Connection terminated unexpectedly/i, verdict("ConnectionError", "ambiguous")],
  [/Client has encountered a connection error and is not queryable/i, verdict("ConnectionError", "ambiguous")],
  [/terminating connection/i, verdict("ConnectionError", "ambiguous")],
  [/the database system is (starting up|shutting down|in recovery mode)/i, verdict("ConnectionError", "before-send")],
  [/sorry, too many clients already/i, verdict("ConnectionError", "before-send")],
  [/Server has closed the connection/i, verdict("ConnectionError", "ambiguous")],
  [/Transaction already closed|Transaction not found/i, verdict("TransactionError", "transaction")],
  // PgBouncer reports its own failures as SQLSTATE 08P01 (protocol_violation),
  // which is permanent from PostgreSQL itself, so only the message tells them
  // apart. None of these reached the server.
  [
    /server login has been failing|pgbouncer cannot connect to server|no more connections allowed|query_wait_timeout/i,
    verdict("ConnectionError", "before-send")
  ],
  [/server conn crashed/i, verdict("ConnectionError", "ambiguous")]
]

const str = (u: unknown): string | undefined => (typeof u === "string" && u.length > 0 ? u : undefined)
const prop = (u: unknown, key: string): unknown => (isObject(u) ? (u as Record<string, unknown>)[key] : undefined)

/** The driver-adapter error record, wherever this Prisma version put it. */
const adapterCause = (error: unknown): unknown => {
  const fromMeta = prop(prop(prop(error, "meta"), "driverAdapterError"), "cause")
  if (fromMeta !== undefined) return fromMeta
  // A DriverAdapterError thrown directly (e.g. by the adapter outside the engine)
  if (prop(error, "name") === "DriverAdapterError") return prop(error, "cause")
  return undefined
}

const byCode = (code: string | undefined): Verdict | undefined =>
  code === undefined ? undefined : (sqlStates[code] ?? prismaCodes[code] ?? errnoCodes[code])

interface Signals {
  readonly verdict: Verdict | undefined
  readonly code: string | undefined
}

const read = (error: unknown, depth: number): Signals => {
  if (!isObject(error) || depth > 4) return { verdict: undefined, code: undefined }

  const adapter = adapterCause(error)
  const kind = str(prop(adapter, "kind"))
  // Every adapter kind carries the server's SQLSTATE in `originalCode` when
  // there was one; it is more precise than the kind (40001 vs 40P01).
  const sqlState = str(prop(adapter, "originalCode")) ?? (kind === "postgres" ? str(prop(adapter, "code")) : undefined)
  const fromState = byCode(sqlState)
  if (fromState !== undefined) return { verdict: fromState, code: sqlState }
  if (kind !== undefined && adapterKinds[kind] !== undefined) {
    return { verdict: adapterKinds[kind], code: sqlState ?? kind }
  }

  const code = str(prop(error, "code"))
  const metaCode = str(prop(prop(error, "meta"), "code"))
  // P2010 (raw query failed) carries the SQLSTATE in meta.code on Prisma 5/6.
  const v = byCode(metaCode) ?? byCode(code) ?? byCode(str(prop(error, "errno")))
  if (v !== undefined) return { verdict: v, code: metaCode !== undefined && byCode(metaCode) ? metaCode : code }

  const message = str(prop(error, "message"))
  if (message !== undefined) {
    for (const [pattern, v] of messagePatterns) {
      if (pattern.test(message)) return { verdict: v, code: code ?? v.code }
    }
  }

  const nested = prop(error, "cause")
  if (nested !== undefined && nested !== error) {
    const inner = read(nested, depth + 1)
    if (inner.verdict !== undefined) return { verdict: inner.verdict, code: inner.code ?? code }
  }
  // Prisma's own code (P2002) is what callers match on; P2010 only says "raw
  // query failed", so the SQLSTATE behind it says more.
  const reported = code !== undefined && code !== "P2010" ? code : (sqlState ?? metaCode ?? code ?? kind)
  return { verdict: undefined, code: reported }
}

const messageOf = (error: unknown): string => {
  const message = prop(error, "message")
  if (typeof message === "string" && message.length > 0) return summarize(message)
  if (typeof error === "string") return summarize(error)
  return summarize(String(error))
}


/**
 * What `diagnose` found: the error's tag and retry safety, its code and a credential-free one-line message.
 *
 * @since 0.1.0
 */
export interface Diagnosis extends Verdict {
  /** the code the error is known by (SQLSTATE, Prisma code, adapter kind or errno), if any */
  readonly code: string | undefined
  /** one line, credentials removed (see `summarize`) */
  readonly message: string
}

/**
 * Reads every signal of a thrown value (Prisma 7 driver-adapter kind,
 * SQLSTATE, Prisma code, errno, message, up to four `cause`s deep); anything
 * unrecognised is a non-retryable `QueryError`. The message is one line with
 * credentials redacted, safe to log.
 *
 * @example
 * ```ts
 * import { diagnose } from "@prisma-resilience/kernel"
 *
 * diagnose(Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" }))
 * // { tag: "ConnectionError", safety: "ambiguous", code: "57P01",
 * //   message: "terminating connection due to administrator command" }
 *
 * diagnose(new Error("Can't reach database server at postgresql://app:secret@127.0.0.1:5432/app"))
 * // { tag: "ConnectionError", safety: "before-send", code: undefined,
 * //   message: "Can't reach database server at postgresql://***@127.0.0.1:5432/app" }
 *
 * diagnose(Object.assign(new Error("Unique constraint failed on the fields: (`number`)"), { code: "P2002" }))
 * // { tag: "QueryError", safety: "never", code: "P2002", message: "Unique constraint failed on the fields: (`number`)" }
 * ```
 *
 * @since 0.1.0
 */
export const diagnose = (error: unknown): Diagnosis => {
  const signals = read(error, 0)
  const v = signals.verdict ?? verdict("QueryError", "never")
  return { tag: v.tag, safety: v.safety, code: signals.code, message: messageOf(error) }
}

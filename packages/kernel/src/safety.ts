/**
 * Retry safety as data: what an error says about running the operation again,
 * and which operations may then run again. No Effect import: every binding
 * shares it.
 *
 * @since 0.1.0
 */

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
 *
 * @since 0.1.0
 */
export type RetrySafety = "before-send" | "ambiguous" | "transaction" | "never"

/**
 * What an operation does, which decides whether an `ambiguous` error may be
 * retried. A `read` or `write` is a single statement (its own implicit
 * transaction); an `idempotent-write` is a write the caller declares safe to
 * repeat; a `transaction` is a whole interactive transaction function.
 *
 * @since 0.1.0
 */
export type OperationKind = "read" | "write" | "idempotent-write" | "transaction"

const readMethods = /\.(find\w*|count|aggregate|groupBy)$/
const rawQueries = /^\$queryRaw(Unsafe)?$/
// Client methods that send nothing by themselves.
const neutralMethods = /^\$(on|connect|disconnect|extends|use)$/

/**
 * The kind of a query from the Prisma method it called (`purchaseOrder.findUnique`,
 * `$queryRaw`): reads are retried after ambiguous errors; anything else is a
 * write, which is not, unless the caller declares it idempotent. Raw SQL is
 * a read only when its text is a plain SELECT (see `kindOfCall`).
 *
 * @since 0.1.0
 */
export const kindOfMethod = (method: string): OperationKind => (readMethods.test(method) ? "read" : "write")

// Comments and leading parentheses say nothing about what a statement does.
const leadingNoise = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*/
const readStatement = /^(select|with|values|table|show)\b/i
// A data-modifying CTE, SELECT … INTO (creates a table), a locking read
// (FOR UPDATE takes row locks a retry would wait on, but writes nothing: it
// stays a read), a sequence step or a second statement make it a write.
const writesInside = /\b(insert|update|delete|merge|into|nextval|setval|copy|call)\b|;\s*\S/i

/** The SQL text of a raw query's arguments: a template's strings, a `Prisma.sql` object or a plain string. */
const sqlText = (args: ReadonlyArray<unknown>): string | undefined => {
  const first = args[0]
  if (typeof first === "string") return first
  if (Array.isArray(first) && first.every((part) => typeof part === "string")) return first.join("?")
  if (typeof first === "object" && first !== null) {
    const strings = (first as { strings?: unknown }).strings
    if (Array.isArray(strings) && strings.every((part) => typeof part === "string")) return strings.join("?")
    const sql = (first as { sql?: unknown }).sql
    if (typeof sql === "string") return sql
  }
  return undefined
}

/**
 * Whether raw SQL is a plain read: one SELECT (or WITH/VALUES/TABLE/SHOW) that writes nothing.
 *
 * @since 0.1.0
 */
export const isPlainRead = (sql: string): boolean => {
  const statement = sql.replace(leadingNoise, "")
  const body = statement.replace(/;\s*$/, "").replace(/\bfor\s+(no\s+key\s+)?update\b/gi, "")
  return readStatement.test(statement) && !writesInside.test(body)
}

/**
 * The kind of one call a query function makes on the client: `undefined` for
 * a call that sends nothing (`$on`, `$connect`). Raw SQL that is not a plain
 * SELECT is a write: `$queryRaw` runs `INSERT … RETURNING` as well.
 *
 * @example
 * ```ts
 * import { kindOfCall } from "@prisma-resilience/kernel"
 *
 * kindOfCall("purchaseOrder.findMany", [{}])                                       // "read"
 * kindOfCall("purchaseOrder.create", [{ data: {} }])                               // "write"
 * kindOfCall("$queryRawUnsafe", ["SELECT * FROM purchase_order WHERE id = $1", 1]) // "read"
 * kindOfCall("$queryRawUnsafe", ["INSERT INTO audit DEFAULT VALUES RETURNING id"]) // "write"
 * kindOfCall("$connect", [])                                                       // undefined
 * ```
 *
 * @since 0.1.0
 */
export const kindOfCall = (method: string, args: ReadonlyArray<unknown>): "read" | "write" | undefined => {
  if (readMethods.test(method)) return "read"
  if (neutralMethods.test(method)) return undefined
  if (rawQueries.test(method) || method === "$queryRawTyped") {
    const sql = sqlText(args)
    return sql !== undefined && isPlainRead(sql) ? "read" : "write"
  }
  return "write"
}

/**
 * Whether running an operation of `kind` again after an error of `safety` can
 * neither duplicate a write nor repeat half a transaction.
 *
 * @example
 * ```ts
 * import { isSafeToRetry } from "@prisma-resilience/kernel"
 *
 * isSafeToRetry("before-send", "write")          // true: the server never saw it
 * isSafeToRetry("ambiguous", "read")             // true
 * isSafeToRetry("ambiguous", "write")            // false: the INSERT may have committed
 * isSafeToRetry("ambiguous", "idempotent-write") // true: declared safe to repeat
 * isSafeToRetry("never", "read")                 // false
 * ```
 *
 * @since 0.1.0
 */
export const isSafeToRetry = (safety: RetrySafety, kind: OperationKind): boolean => {
  switch (safety) {
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

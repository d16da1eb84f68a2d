/**
 * Retry safety as data: what an error says about running the operation again,
 * and which operations may then run again. No Effect import: every binding
 * shares it.
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
 */
export type RetrySafety = "before-send" | "ambiguous" | "transaction" | "never"

/**
 * What an operation does, which decides whether an `ambiguous` error may be
 * retried. A `query` is a single statement (its own implicit transaction); a
 * `transaction` is a whole interactive transaction function.
 */
export type OperationKind = "read" | "write" | "idempotent-write" | "transaction"

const readMethods = /\.(find\w*|count|aggregate|groupBy)$|^\$queryRaw(Unsafe)?$|^\$queryRawTyped$/

/**
 * The kind of a query from the Prisma method it called (`purchaseOrder.findUnique`,
 * `$queryRaw`): reads are retried after ambiguous errors; anything else is a
 * write, which is not, unless the caller declares it idempotent.
 */
export const kindOfMethod = (method: string): OperationKind => (readMethods.test(method) ? "read" : "write")

/**
 * Whether running an operation of `kind` again after an error of `safety` can
 * neither duplicate a write nor repeat half a transaction.
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

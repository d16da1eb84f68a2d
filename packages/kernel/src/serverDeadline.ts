/**
 * The server's side of an attempt's deadline, and what a transaction records
 * for the answer to an ambiguous commit. Prisma cannot cancel a query, and
 * `pg_cancel_backend` does not reach the right backend behind a
 * transaction-mode pooler, so the server is told the limit itself: by the
 * connection's `statement_timeout`, or by a transaction-local one
 * (`set_config(…, true)`, i.e. `SET LOCAL`), which poolers pass through. A
 * transaction records its id before COMMIT so that, when the connection dies
 * during COMMIT, `txid_status` can say what happened. Plain promises over
 * any Prisma client: every binding runs these statements the same way.
 *
 * @since 0.2.0
 */

/**
 * What a client must offer for the statements of this module; any Prisma
 * client and its transaction client do.
 *
 * @since 0.2.0
 */
export interface RawQueryable {
  $queryRaw(query: TemplateStringsArray, ...values: Array<any>): PromiseLike<unknown>
}

/**
 * A client that can also run a batch transaction.
 *
 * @since 0.2.0
 */
export interface Batchable extends RawQueryable {
  $transaction(...args: Array<any>): PromiseLike<unknown>
}

/** A lazy Prisma promise, which a batch `$transaction` can carry. */
const isPrismaPromise = (promise: PromiseLike<unknown>): boolean =>
  (promise as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === "PrismaPromise" &&
  typeof (promise as { requestTransaction?: unknown }).requestTransaction === "function"

/**
 * Runs one Prisma query with its own server-side limit: a batch transaction of
 * the transaction-local limits and the query. Three more round trips, so only
 * for an attempt whose timeout is not the one the connection's limits were
 * made for. A promise that is not a lazy Prisma promise (an async query
 * function) cannot be carried and runs under the connection's limits.
 *
 * @since 0.2.0
 */
export const withStatementLimit = <A>(client: Batchable, promise: PromiseLike<A>, limitMs: number): PromiseLike<A> =>
  isPrismaPromise(promise)
    ? client.$transaction([setLocalLimits(client, limitMs, limitMs), promise]).then((results) =>
      (results as [unknown, A])[1]
    )
    : promise

// 0 would mean no limit at all.
const ms = (value: number) => String(Math.max(1, Math.floor(value)))

/**
 * `SET LOCAL` of the three limits in one statement: they override the
 * connection's for this transaction only, so an attempt with a longer
 * timeout than the layer's is not cut short by the connection's values.
 */
const setLocalLimits = (client: RawQueryable, statementMs: number, idleMs: number) =>
  client.$queryRaw`SELECT set_config('statement_timeout', ${ms(statementMs)}, true) AS statement,
    set_config('lock_timeout', ${ms(statementMs)}, true) AS lock,
    set_config('idle_in_transaction_session_timeout', ${ms(idleMs)}, true) AS idle`

/**
 * What one transaction attempt saw before COMMIT.
 *
 * @since 0.2.0
 */
export interface BeforeCommit<A> {
  /**
   * `undefined` while the function has not returned (then COMMIT was never
   * sent); `null` when the transaction wrote nothing (it has no id, and its
   * outcome does not matter); else its id and the server it ran on.
   */
  txid: string | null | undefined
  server: string | undefined
  value: A | undefined
}

/**
 * A fresh record for one transaction attempt.
 *
 * @since 0.2.0
 */
export const beforeCommit = <A>(): BeforeCommit<A> => ({ txid: undefined, server: undefined, value: undefined })

/**
 * The transaction function as the layer runs it: first the limits, from what
 * is left of the attempt (`leftMs`): each statement and each lock wait may
 * take that less the margin, a pause between statements that at most; then
 * `f`; then the transaction id, read only once `f` returned so that a
 * read-only transaction is not given one.
 *
 * @since 0.2.0
 */
export const transactionBody = <T extends RawQueryable, A>(
  f: (tx: T) => Promise<A>,
  leftMs: () => number,
  marginMs: number,
  seen: BeforeCommit<A>
) =>
async (tx: T): Promise<A> => {
  const left = leftMs()
  await setLocalLimits(tx, left - marginMs, left)
  const value = await f(tx)
  const [row] = (await tx.$queryRaw`SELECT txid_current_if_assigned()::text AS txid,
    extract(epoch FROM pg_postmaster_start_time())::text AS server`) as Array<{ txid: string | null; server: string }>
  seen.value = value
  seen.server = row?.server
  seen.txid = row?.txid ?? null
  return value
}

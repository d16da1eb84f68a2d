/**
 * The server's side of an attempt's deadline, and the answer to an ambiguous
 * commit. Prisma cannot cancel a query, and `pg_cancel_backend` does not reach
 * the right backend behind a transaction-mode pooler, so the server is told
 * the limit itself: by the connection's `statement_timeout`, or by a
 * transaction-local one (`set_config(…, true)`, i.e. `SET LOCAL`), which
 * poolers pass through. A transaction records its id before COMMIT so that,
 * when the connection dies during COMMIT, `txid_status` can say what happened.
 */
import { Duration, Effect } from "effect"
import type { DatabaseError } from "../Errors.js"
import { awaitWithTimeout } from "./attempt.js"

/** What a client must offer for the statements of this module; any Prisma client and its transaction client do. */
export interface RawQueryable {
  $queryRaw(query: TemplateStringsArray, ...values: Array<any>): PromiseLike<unknown>
}

interface Batchable extends RawQueryable {
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

/** What one transaction attempt saw before COMMIT. */
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

export const beforeCommit = <A>(): BeforeCommit<A> => ({ txid: undefined, server: undefined, value: undefined })

/**
 * The transaction function as the layer runs it: first the limits, from what
 * is left of the attempt (`leftMs`): each statement and each lock wait may
 * take that less the margin, a pause between statements that at most; then
 * `f`; then the transaction id, read only once `f` returned so that a
 * read-only transaction is not given one.
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

export type CommitStatus = "committed" | "aborted" | "unknown"

const POLL_MS = 50

/**
 * Asks `txid_status` on a connection of `client`'s pool (the failed one is
 * gone from it) until it says committed or aborted, or `timeoutMs` ran out.
 * `in progress` is asked again: the old backend may not have seen its
 * connection close, or may still be writing the commit. An answer from another
 * server (a restart or a failover, where the id may have been given to another
 * transaction) is `unknown`.
 */
export const commitStatus = (
  client: RawQueryable,
  seen: BeforeCommit<unknown>,
  timeoutMs: number,
  operation: string,
  attempt: number
): Effect.Effect<CommitStatus> =>
  Effect.suspend(() => {
    const until = performance.now() + timeoutMs
    const ask: Effect.Effect<CommitStatus> = Effect.suspend(() => {
      const left = until - performance.now()
      if (left <= 0) return Effect.succeed("unknown" as const)
      return awaitWithTimeout(
        client.$queryRaw`SELECT txid_status(${seen.txid}::bigint) AS status,
          extract(epoch FROM pg_postmaster_start_time())::text AS server`,
        left,
        operation,
        attempt
      ).pipe(
        Effect.map((rows): CommitStatus | "again" => {
          const [row] = rows as Array<{ status: string | null; server: string }>
          if (row === undefined || row.server !== seen.server) return "unknown"
          if (row.status === "committed" || row.status === "aborted") return row.status
          // null: the id is too old to tell
          return row.status === null ? "unknown" : "again"
        }),
        // A broken pooled connection, or a server still restarting: ask again.
        // An error of a working server (an id from its future) will not change.
        Effect.catchAll((error: DatabaseError) => Effect.succeed(error.safety === "never" ? "unknown" as const : "again" as const)),
        Effect.flatMap((status) =>
          status !== "again"
            ? Effect.succeed(status)
            : until - performance.now() > POLL_MS
            ? Effect.zipRight(Effect.sleep(Duration.millis(POLL_MS)), ask)
            : Effect.succeed("unknown" as const)
        )
      )
    })
    return ask
  })

import { PrismaPg } from "@prisma/adapter-pg"
import pg from "pg"
import { PrismaClient } from "./generated/prisma/client.js"

export { Prisma, PrismaClient } from "./generated/prisma/client.js"
export type { PurchaseOrder } from "./generated/prisma/client.js"

export interface PoolOptions {
  readonly max?: number
  /** default 5000: pg's own default, 0, waits forever for a connection */
  readonly connectionTimeoutMillis?: number
  readonly idleTimeoutMillis?: number
  /** server-side limits in ms, sent as startup parameters; core sets them from the attempt timeout */
  readonly statement_timeout?: number
  readonly lock_timeout?: number
  readonly idle_in_transaction_session_timeout?: number
}

export interface PoolCounts {
  readonly totalCount: number
  readonly idleCount: number
  readonly waitingCount: number
}

const pools = new WeakMap<PrismaClient, pg.Pool>()

/**
 * A client for the purchase-order schema over a pg pool of its own. The pool
 * is created here (not inside the adapter) so that its counts can be read with
 * `poolStats`; `$disconnect` ends it.
 */
export const makePrismaClient = (url: string, options: PoolOptions = {}): PrismaClient => {
  const pool = new pg.Pool({
    connectionString: url,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
    max: options.max,
    idleTimeoutMillis: options.idleTimeoutMillis,
    statement_timeout: options.statement_timeout,
    lock_timeout: options.lock_timeout,
    idle_in_transaction_session_timeout: options.idle_in_transaction_session_timeout
  })
  // An idle client whose server went away emits 'error' on the pool; without a
  // listener that is an uncaught exception. The next checkout sees the failure.
  pool.on("error", () => {})
  // Without "minimal" Prisma builds a call-site Error for every query (to print
  // a code frame on failure): 40-80 µs of CPU per query, and frames that core
  // strips from its messages anyway.
  const client = new PrismaClient({ adapter: new PrismaPg(pool), errorFormat: "minimal" })
  const disconnect = client.$disconnect.bind(client)
  let ended: Promise<void> | undefined
  client.$disconnect = async () => {
    await disconnect()
    ended ??= pool.end()
    await ended
  }
  pools.set(client, pool)
  return client
}

/** The pool counts of a client made by `makePrismaClient`. */
export const poolStats = (client: PrismaClient): PoolCounts | undefined => {
  const pool = pools.get(client)
  return pool && { totalCount: pool.totalCount, idleCount: pool.idleCount, waitingCount: pool.waitingCount }
}

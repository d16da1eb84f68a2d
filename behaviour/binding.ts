// What a binding of the resilience layer offers the behaviour suite: a
// Promise-level view of one database, small enough that each binding (core on
// Effect 3, a core on Effect 4, the Promise adapter) implements it in a few
// dozen lines. The suite (behaviour/suite/*.ts) is written against this
// interface only, so every binding runs it unchanged.
import type { RetryConfig } from "@prisma-resilience/kernel/retryPolicy"
import type { PartialSettings } from "@prisma-resilience/kernel/settings"
import type { Prisma, PrismaClient } from "../packages/core-effect3/test/fixture/client.js"

/** The client the query functions receive: the fixture's generated Prisma client. */
export type Client = PrismaClient
/** The client a transaction function receives. */
export type TxClient = Prisma.TransactionClient

export interface OpenOptions {
  /** one connection string, or several hosts in libpq syntax */
  readonly url: string
  /** single-host strings of replicas for opted-in reads */
  readonly replicaUrls?: ReadonlyArray<string>
  /** settings over the defaults of the kernel's table; what is not given is the default */
  readonly settings?: PartialSettings
  /** the database's name in metric labels; unique per open keeps tests apart */
  readonly name?: string
}

export interface QueryOptions {
  readonly kind?: "read" | "write" | "idempotent-write"
  readonly operation?: string
  /** lets a read go to a replica within the lag limit */
  readonly replica?: boolean
  /** this call's retry policy over the database's (not checked against the budget at start-up) */
  readonly retry?: Partial<RetryConfig>
}

export interface TransactionOptions {
  readonly operation?: string
  readonly idempotent?: boolean
  readonly isolationLevel?: "ReadUncommitted" | "ReadCommitted" | "RepeatableRead" | "Serializable"
}

export type Health =
  | { readonly status: "pass" }
  | { readonly status: "fail"; readonly reason: string }

/**
 * What a rejected query or transaction exposes, whatever the binding rejects
 * with: core's `DatabaseError` fields (the tag, the code, the retry safety and
 * the attempt it happened on, 0 when nothing was sent).
 */
export interface Failure {
  readonly _tag: string
  readonly code: string | undefined
  readonly safety: string | undefined
  readonly attempt: number | undefined
  readonly message: string
}

export interface BoundDatabase {
  /**
   * One request: `f` may run more than once (retries). Nothing is sent before
   * the call; during warm-up it waits at most DB_WARMUP_WAIT_MS, within its
   * budget. Rejects with a `Failure`.
   */
  query<A>(f: (client: Client) => PromiseLike<A>, options?: QueryOptions): Promise<A>
  /** One interactive transaction, run again whole when that is safe. Rejects with a `Failure`. */
  transaction<A>(f: (tx: TxClient) => Promise<A>, options?: TransactionOptions): Promise<A>
  /** Health without waiting: `warming` until warm-up has finished. Never rejects. */
  health(): Promise<Health>
  /** Disconnects; later calls reject. */
  close(): Promise<void>
}

export interface Binding {
  readonly name: string
  /** Starts warm-up and returns at once: the database may not answer yet. */
  open(options: OpenOptions): BoundDatabase
}

const text = (u: unknown, key: string): string | undefined => {
  const value = (u as Record<string, unknown>)[key]
  return typeof value === "string" ? value : undefined
}

/** A rejection as a `Failure` when it has a tag; what else it is, described. */
export const asFailure = (error: unknown): Failure => {
  const tag = typeof error === "object" && error !== null ? text(error, "_tag") : undefined
  if (tag === undefined) throw new Error(`not a tagged failure: ${String(error)}`, { cause: error })
  const attempt = (error as { attempt?: unknown }).attempt
  return {
    _tag: tag,
    code: text(error, "code"),
    safety: text(error, "safety"),
    attempt: typeof attempt === "number" ? attempt : undefined,
    message: text(error, "message") ?? ""
  }
}

/** How a request settled: its value, or its `Failure`. */
export const settle = <A>(request: PromiseLike<A>) =>
  Promise.resolve(request).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, failure: asFailure(error) })
  )

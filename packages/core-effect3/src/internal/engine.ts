/**
 * What the query path, the transaction path and replica routing of one
 * `Database` share: the client the queries use now (another one after a
 * failover), the guard of its breaker, budget and query-path health, the
 * topology, and the operations each of those modules provides to the others
 * (`Ops`, filled in once all are built, so they can call each other).
 */
import { Clock, Effect, type Fiber, FiberRef } from "effect"
import type {
  PoolSettings,
  PrismaClientLike,
  QueryOptions,
  ServerTimeoutConfig,
  TransactionClient,
  TransactionOptions
} from "../DatabaseService.js"
import type { DatabaseError } from "../Errors.js"
import type { RetryConfig } from "@prisma-resilience/kernel/retryPolicy"
import * as RetryPolicy from "../RetryPolicy.js"
import type { Guard } from "./attempt.js"
import type * as Topology from "./topology.js"

export interface Engine<C extends PrismaClientLike> {
  /** names the database in metric labels */
  readonly name: string
  readonly retryConfig: RetryConfig
  readonly server: ServerTimeoutConfig
  readonly pool: PoolSettings
  /** the writer the queries go to now, and its node */
  readonly primary: { client: C; node: string | undefined }
  readonly guard: Guard
  readonly topology: Topology.Topology<C>
  /** opted-in reads: each replica with a guard of its own */
  readonly replicas: ReadonlyMap<Topology.Replica<C>, { readonly guard: Guard }>
  /** `promise` with a statement limit of its own when `timeoutMs` is not the one the connection has */
  readonly limited: <A>(promise: () => PromiseLike<A>, timeoutMs: number) => () => PromiseLike<A>
  readonly ops: Ops
}

/** The operations the modules offer each other. */
export interface Ops {
  queryIn: <C2, A>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    f: (client: C2) => PromiseLike<A>,
    options: QueryOptions | undefined
  ) => Effect.Effect<A, DatabaseError>
  query: <C2, A>(f: (client: C2) => PromiseLike<A>, options?: QueryOptions) => Effect.Effect<A, DatabaseError>
  transaction: <C2, A>(
    f: (tx: TransactionClient<C2>) => Promise<A>,
    options?: TransactionOptions
  ) => Effect.Effect<A, DatabaseError>
}

/**
 * Whether the current fiber (a request) wrote: its opted-in reads then go to
 * the writer, so that it reads what it wrote.
 */
export const wroteHere = FiberRef.unsafeMake(false)

/** `base` with a call's own overrides, if any. */
export const merge = (base: RetryConfig, override: Partial<RetryConfig> | undefined): RetryConfig =>
  override === undefined ? base : { ...base, ...override }

/** A Prisma promise sends nothing until it is awaited. */
export const isLazy = (promise: PromiseLike<unknown>) =>
  (promise as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === "PrismaPromise"

/** The fiber's clock, read without an Effect. */
export const nowIn = (fiber: Fiber.RuntimeFiber<unknown, unknown>): number =>
  fiber.currentDefaultServices.unsafeMap.get(Clock.Clock.key).unsafeCurrentTimeMillis()

/**
 * The one deadline rule: the request's own (`RetryPolicy.withBudget`, or a
 * wait for warm-up that already began it), else `now` plus the budget.
 */
export const deadlineIn = (fiber: Fiber.RuntimeFiber<unknown, unknown>, config: RetryConfig, now: number): number =>
  RetryPolicy.deadlineOf(fiber.getFiberRef(RetryPolicy.currentDeadline), config, now)

/**
 * Waits for the search for the writer within the request's deadline, then
 * runs `then` under the same deadline: a failover is being handled, and the
 * old writer is not where anything should go.
 */
export const afterDiscovery = <C extends PrismaClientLike, A>(
  e: Engine<C>,
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  operation: string,
  then: Effect.Effect<A, DatabaseError>
): Effect.Effect<A, DatabaseError> => {
  const now = e.guard.clock.unsafeCurrentTimeMillis()
  const deadlineMs = deadlineIn(fiber, e.retryConfig, now)
  return Effect.zipRight(
    e.topology.awaitWriter(deadlineMs, now, operation, 1),
    Effect.locally(then, RetryPolicy.currentDeadline, deadlineMs)
  )
}

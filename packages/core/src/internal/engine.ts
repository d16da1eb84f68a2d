/**
 * What the query path, the transaction path and replica routing of one
 * `Database` share: the client the queries use now (another one after a
 * failover), the guard of its breaker, budget and query-path health, the
 * topology, and the operations each of those modules provides to the others
 * (`Ops`, filled in once all are built, so they can call each other).
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
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
    fiber: Fiber.Fiber<unknown, unknown>,
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
export const wroteHere: Context.Reference<boolean> = Context.Reference<boolean>(
  "@prisma-resilience/core/wroteHere",
  { defaultValue: () => false }
)

/**
 * Marks the current fiber as having written, for the rest of its life (or of
 * the region that provided its context): Effect 4 has no `FiberRef.set`, so
 * the fiber's own context is replaced.
 */
export const markWrote: Effect.Effect<void> = Effect.withFiber((fiber) => {
  if (!fiber.getRef(wroteHere)) fiber.setContext(Context.add(fiber.context, wroteHere, true))
  return Effect.void
})

/** `base` with a call's own overrides, if any. */
export const merge = (base: RetryConfig, override: Partial<RetryConfig> | undefined): RetryConfig =>
  override === undefined ? base : { ...base, ...override }

/** A Prisma promise sends nothing until it is awaited. */
export const isLazy = (promise: PromiseLike<unknown>) =>
  (promise as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === "PrismaPromise"

/** The fiber's clock, read without an Effect. */
export const nowIn = (fiber: Fiber.Fiber<unknown, unknown>): number =>
  fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

/**
 * The one deadline rule: the request's own (`RetryPolicy.withBudget`, or a
 * wait for warm-up that already began it), else `now` plus the budget.
 */
export const deadlineIn = (fiber: Fiber.Fiber<unknown, unknown>, config: RetryConfig, now: number): number =>
  RetryPolicy.deadlineOf(fiber.getRef(RetryPolicy.currentDeadline), config, now)

/**
 * Waits for the search for the writer within the request's deadline, then
 * runs `then` under the same deadline: a failover is being handled, and the
 * old writer is not where anything should go.
 */
export const afterDiscovery = <C extends PrismaClientLike, A>(
  e: Engine<C>,
  fiber: Fiber.Fiber<unknown, unknown>,
  operation: string,
  then: Effect.Effect<A, DatabaseError>
): Effect.Effect<A, DatabaseError> => {
  const now = e.guard.clock.currentTimeMillisUnsafe()
  const deadlineMs = deadlineIn(fiber, e.retryConfig, now)
  return Effect.andThen(
    e.topology.awaitWriter(deadlineMs, now, operation, 1),
    Effect.provideService(then, RetryPolicy.currentDeadline, deadlineMs)
  )
}

/**
 * `Database`: the service every query goes through. Its layer is the warm-up:
 * it builds the user's Prisma client, connects and probes it with `SELECT 1`
 * (retried with a capped backoff, bounded by a timeout) and only then provides
 * the service; releasing the scope disconnects. This module assembles the
 * service from its parts (see docs/ARCHITECTURE.md): the warm-up
 * (`internal/warmup`), the guards (`internal/guards`), the query path
 * (`internal/query`), transactions (`internal/transaction`), replica routing
 * (`internal/replicaRouting`) and health's probe (`internal/healthProbe`).
 */
import * as Clock from "effect/Clock"
import type * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "@prisma-resilience/kernel/circuitBreaker"
import { meteredBreaker } from "./internal/meteredGuards.js"
import { overlay, serverLimits } from "@prisma-resilience/kernel/settings"
import { config, connectionConfig, defaults } from "./DatabaseConfig.js"
import type {
  DatabaseService,
  DatabaseState,
  HealthReport,
  LayerOptions,
  PoolSettings,
  PoolStats,
  PrismaClientLike,
  QueryOptions,
  ServerTimeoutConfig,
  Settings,
  TransactionClient,
  TransactionOptions,
  WarmupInfo
} from "./DatabaseService.js"
import { type DatabaseError, type HealthError, RetryConfigError, type WarmupError } from "./Errors.js"
import { awaitWithTimeout } from "./internal/attempt.js"
import { timerOf } from "./internal/clock.js"
import { checkConnectionStrings, missingUrl } from "./internal/connection.js"
import { describe } from "@prisma-resilience/kernel/describe"
import type { Engine, Ops } from "./internal/engine.js"
import { onNewWriter, replicaGuards, writerGuard } from "./internal/guards.js"
import { check as checkHealth } from "./internal/health.js"
import { healthProbe } from "./internal/healthProbe.js"
import { queryIn, queryNow } from "./internal/query.js"
import { withStatementLimit } from "@prisma-resilience/kernel/serverDeadline"
import * as Topology from "./internal/topology.js"
import { transactionIn } from "./internal/transaction.js"
import { disconnectQuietly, warmUp } from "./internal/warmup.js"
import * as Metrics from "./internal/metrics.js"
import * as RetryPolicy from "./RetryPolicy.js"

export * from "./DatabaseConfig.js"
export type * from "./DatabaseService.js"

const validateServerTimeouts = (
  server: ServerTimeoutConfig,
  retry: RetryPolicy.RetryConfig
): Effect.Effect<ServerTimeoutConfig, RetryConfigError> =>
  server.marginMs < retry.attemptTimeoutMs
    ? Effect.succeed(server)
    : Effect.fail(
      new RetryConfigError({
        message: `DB_SERVER_TIMEOUT_MARGIN_MS ${server.marginMs} ms leaves no server-side limit within ` +
          `DB_ATTEMPT_TIMEOUT_MS ${retry.attemptTimeoutMs} ms: lower the margin`
      })
    )

const defaultName = "default"

/** The connection strings of `options`, checked; the error never holds one. */
const connectionStrings = <C extends PrismaClientLike>(options: LayerOptions<C>) =>
  Effect.try({
    try: () => checkConnectionStrings(options.url, options.replicaUrls),
    catch: (error) => error as RetryConfigError
  })

/** The topology of `options`' connection strings, its replicas' breakers logged and published. */
const makeTopology = <C extends PrismaClientLike>(
  options: LayerOptions<C>,
  settings: Settings,
  name: string,
  pool: PoolSettings,
  logTransition: (subject: string) => (transition: CircuitBreaker.Transition) => void
) =>
  Effect.flatMap(connectionStrings(options), (urls) =>
    Topology.make({
      name,
      plan: urls.plan,
      url: urls.url,
      replicaUrls: urls.replicaUrls,
      makeClient: options.client,
      config: settings.topology,
      probeTimeoutMs: settings.warmup.healthTimeoutMs,
      discoveryTimeoutMs: settings.warmup.timeoutMs,
      shutdownTimeoutMs: settings.warmup.shutdownTimeoutMs,
      makeBreaker: (node) =>
        meteredBreaker(
          settings.circuitBreaker,
          logTransition(`Circuit breaker of replica ${node}`),
          Metrics.nodeLabels(name, node)
        )
    }, pool))

/** Samples the pool every second into the pool gauges, when the layer can read its counts. */
const poolGauges = <C>(poolStats: ((client: C) => PoolStats | undefined) | undefined, primary: { client: C }, name: string) => {
  const labels = Metrics.databaseLabels(name)
  const read = Effect.sync(() => (poolStats ? poolStats(primary.client) : undefined))
  const sample = Effect.flatMap(read, (stats) =>
    stats === undefined ? Effect.void : Effect.all([
      Metric.update(Metric.withAttributes(Metrics.poolTotal, labels), stats.totalCount),
      Metric.update(Metric.withAttributes(Metrics.poolIdle, labels), stats.idleCount),
      Metric.update(Metric.withAttributes(Metrics.poolWaiting, labels), stats.waitingCount)
    ], { discard: true }))
  const start = Effect.andThen(
    sample,
    poolStats === undefined ? Effect.void : Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(Duration.seconds(1))))
  )
  return { read, start }
}

/**
 * One `SELECT 1` on the current client; with `target_session_attrs=read-write`
 * the probe also asks whether the writer still takes writes (a demoted
 * primary answers `SELECT 1`), and a connection failure starts the search.
 */
const pingOf = <C extends PrismaClientLike>(e: Engine<C>, defaultTimeoutMs: number) => (timeoutMs = defaultTimeoutMs) =>
  Effect.suspend(() => {
    const started = e.guard.timer.now()
    const probe = e.topology.writerMode
      ? e.topology.verify(e.primary.client, e.primary.node).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            if (error._tag === "ConnectionError") e.topology.discover(`the health probe: ${describe(error)}`)
          })
        )
      )
      : awaitWithTimeout(e.guard.timer, e.primary.client.$queryRaw`SELECT 1`, timeoutMs, "ping", 1)
    return Effect.map(probe, () => Math.round((e.guard.timer.now() - started) * 100) / 100)
  }).pipe(Effect.withSpan("Database.ping"))

/** The service's face over `e`. */
const serviceOf = <C extends PrismaClientLike>(
  e: Engine<C>,
  settings: Settings,
  info: WarmupInfo,
  ready: Metric.Gauge<number>,
  readStats: Effect.Effect<PoolStats | undefined>
): Effect.Effect<DatabaseService<C>> =>
  Effect.map(Ref.make<DatabaseState>("serving"), (state) => {
    const { guard } = e
    const ping = pingOf(e, settings.warmup.healthTimeoutMs)
    const now = () => guard.clock.currentTimeMillisUnsafe()
    return {
      query: e.ops.query,
      transaction: e.ops.transaction,
      ping,
      probe: healthProbe(guard, ping, { timeoutMs: settings.warmup.healthTimeoutMs, quietMs: settings.circuitBreaker.resetTimeoutMs }),
      warmup: info,
      retryConfig: e.retryConfig,
      warmupConfig: settings.warmup,
      state: Ref.get(state),
      beginShutdown: Effect.andThen(Ref.set(state, "shutting_down"), Metric.update(ready, 0)),
      poolStats: readStats,
      circuit: Effect.sync(() => ({
        state: guard.breaker.state(now()),
        retryAfterMs: Math.max(0, guard.breaker.retryAfterMs(now()))
      })),
      retryBudgetTokens: Effect.sync(() => guard.budget.tokens()),
      queryPath: Effect.sync(() => guard.queryHealth.degraded(now())),
      nodes: Effect.sync(() => e.topology.active ? e.topology.nodes(now(), e.primary.node) : undefined)
    }
  })

/**
 * Builds the service around a warmed-up client from resolved `settings`. The
 * scope owns the client: closing it marks the service shutting down, sets
 * `db_ready` to 0 and disconnects within `shutdownTimeoutMs`.
 */
const makeWith = <C extends PrismaClientLike>(
  options: LayerOptions<C>,
  settings: Settings,
  name: string
): Effect.Effect<DatabaseService<C>, WarmupError | RetryConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const retryConfig = yield* RetryPolicy.validate(settings.retry)
    const server = yield* validateServerTimeouts(settings.serverTimeouts, retryConfig)
    const labels = Metrics.databaseLabels(name)
    const ready = Metric.withAttributes(Metrics.ready, labels)
    const limitedPool: PoolSettings = { ...serverLimits(retryConfig, server), ...settings.pool }
    const clock = yield* Clock.Clock
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    // Transitions happen in promise callbacks, outside any fiber: they are
    // logged through the runtime (loggers, log level) the layer was built with.
    const logTransition = (subject: string) => ({ from, reason, to }: CircuitBreaker.Transition) =>
      runFork((to === "closed" ? Effect.logInfo : Effect.logWarning)(`${subject} ${from} → ${to}: ${reason}`))
    const topology = yield* makeTopology(options, settings, name, limitedPool, logTransition)
    // The client the queries use now: another one after a failover.
    let current: { readonly client: C } | undefined
    const { client, info, node, pool: connected } = yield* Effect.acquireRelease(
      // Acquisition is uninterruptible by default, which would keep the warm-up
      // timeout from stopping the retries; each attempt cleans up after itself.
      Effect.interruptible(warmUp(options, limitedPool, settings.warmup, labels, topology)),
      (warm) =>
        Effect.gen(function*() {
          yield* Metric.update(ready, 0)
          const started = yield* Clock.currentTimeMillis
          yield* disconnectQuietly(current?.client ?? warm.client, settings.warmup.shutdownTimeoutMs)
          yield* Effect.logInfo(`Database disconnected in ${(yield* Clock.currentTimeMillis) - started} ms`)
        })
    )
    const primary = { client, node }
    current = primary
    const guardOptions = { name, settings, clock, timer: timerOf(clock), topology, primary, poolStats: options.poolStats, logTransition }
    const guard = writerGuard(guardOptions)
    yield* topology.start(() => primary.node, onNewWriter(guardOptions, guard))
    // The connection's statement_timeout was made for the layer's attempt
    // timeout; an attempt with another one (a per-call `retry`, or the last
    // attempt before the deadline) carries its own.
    const connectionLimited = connected.statement_timeout !== undefined
    const e: Engine<C> = {
      name,
      retryConfig,
      server,
      pool: settings.pool,
      primary,
      guard,
      topology,
      replicas: replicaGuards(guardOptions),
      limited: (promise, timeoutMs) =>
        !connectionLimited || timeoutMs === retryConfig.attemptTimeoutMs
          ? promise
          : () => withStatementLimit(primary.client, promise(), timeoutMs - server.marginMs),
      ops: {} as Ops
    }
    Object.assign(e.ops, {
      queryIn: (fiber, f, queryOptions) => queryIn(e, fiber, f, queryOptions),
      query: <C2, A>(f: (client: C2) => PromiseLike<A>, queryOptions?: QueryOptions) =>
        Effect.withFiber<A, DatabaseError>((fiber) => queryIn(e, fiber, f, queryOptions)),
      transaction: <C2, A>(f: (tx: TransactionClient<C2>) => Promise<A>, txOptions?: TransactionOptions) =>
        Effect.withFiber<A, DatabaseError>((fiber) => transactionIn(e, fiber, f, txOptions))
    } satisfies Ops)
    const gauges = poolGauges(options.poolStats, primary, name)
    yield* gauges.start
    yield* Metric.update(ready, 1)
    const service = yield* serviceOf(e, settings, info, ready, gauges.read)
    queriesIn.set(service, e.ops.queryIn)
    if (!topology.active) {
      queriesNow.set(service, (f, queryOptions, deadline, onSuccess, onFailure) =>
        queryNow(e, f, queryOptions, deadline, onSuccess, onFailure))
    }
    return service
  })

// Builds the service with `options` and the built-in defaults for every
// setting not given (no environment is read): the warm-up, then the service.
const make = <C extends PrismaClientLike>(
  options: LayerOptions<C>
): Effect.Effect<DatabaseService<C>, WarmupError | RetryConfigError, Scope.Scope> =>
  makeWith(options, overlay(defaults, options), options.name ?? defaultName)

// `make`, with the settings not given read through `Config` (the `DB_*` variables).
const makeConfig = <C extends PrismaClientLike>(
  options: LayerOptions<C>
): Effect.Effect<DatabaseService<C>, WarmupError | RetryConfigError | Config.ConfigError, Scope.Scope> =>
  Effect.flatMap(Effect.all([config, connectionConfig]), ([base, connection]) => {
    const withUrls: LayerOptions<C> = {
      ...options,
      url: options.url ?? Option.getOrUndefined(connection.url),
      replicaUrls: options.replicaUrls ?? Option.toArray(connection.replicaUrls)
    }
    if (withUrls.url === undefined) return Effect.fail(missingUrl())
    return makeWith(withUrls, overlay(base, withUrls), options.name ?? defaultName)
  })

type QueryIn = <C, A>(
  fiber: Fiber.Fiber<unknown, unknown>,
  f: (client: C) => PromiseLike<A>,
  options: QueryOptions | undefined
) => Effect.Effect<A, DatabaseError>

// Lets the accessors run a query in the fiber they already hold, one Effect
// operation instead of three (read the tag, flatMap, the service's own
// `withFiberRuntime`).
const queriesIn = new WeakMap<DatabaseService, QueryIn>()

/** @internal */
export type QueryNow = <C, A>(
  f: (client: C) => PromiseLike<A>,
  options: QueryOptions | undefined,
  deadlineMs: number | undefined,
  onSuccess: (value: A) => void,
  onFailure: (rest: Effect.Effect<A, DatabaseError>) => void
) => void

const queriesNow = new WeakMap<DatabaseService, QueryNow>()

/**
 * @internal
 * The service's fiber-free query entry for Promise callers
 * (`createResilientPrisma`); undefined for a database with several nodes.
 */
export const queryNowOf = (service: DatabaseService): QueryNow | undefined => queriesNow.get(service)

/**
 * A `Database` tag bound to one client type, with its `make`, layers and
 * accessors (see `Database.Tag`). Two tags with different keys are two
 * databases in one context; their gauges are labelled `database` with `name`
 * (default: the key), or with the layer's `options.name`.
 *
 * @since 0.1.0
 */
export interface DatabaseTag<Self, Id extends string, C extends PrismaClientLike>
  extends Context.ServiceClass<Self, Id, DatabaseService<C>>
{
  /**
   * Builds the service with `options` and the built-in defaults for every
   * setting not given (no environment is read): the warm-up, then the
   * service, released with the scope (which disconnects).
   *
   * @example
   * ```ts
   * const program = Effect.scoped(Effect.gen(function*() {
   *   const db = yield* Db.make({ url: "postgresql://app@127.0.0.1:5432/app", client: (pool) => makeClient(pool) })
   *   return yield* db.query((c) => c.purchaseOrder.count())
   * }))
   * ```
   */
  readonly make: (options: LayerOptions<C>) => Effect.Effect<DatabaseService<C>, WarmupError | RetryConfigError, Scope.Scope>
  /**
   * The warm-up as a scoped layer, with the built-in defaults for settings
   * not given.
   *
   * @example
   * ```ts
   * const DbLive = Db.layer({ url: "postgresql://app@127.0.0.1:5432/app", client: (pool) => makeClient(pool), retry: { delaysMs: [200] } })
   * ```
   */
  readonly layer: (options: LayerOptions<C>) => Layer.Layer<Self, WarmupError | RetryConfigError>
  /**
   * The warm-up as a scoped layer, with the settings not given read from
   * `DATABASE_URL`, `DATABASE_REPLICA_URLS` and the `DB_*` variables (checked:
   * a bad value fails with a `ConfigError` naming the variable).
   *
   * @example
   * ```ts
   * const DbLive = Db.layerConfig({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })
   * ```
   */
  readonly layerConfig: (
    options: LayerOptions<C>
  ) => Layer.Layer<Self, WarmupError | RetryConfigError | Config.ConfigError>
  /**
   * One query through the retry policy, the attempt timeout, the request
   * budget, the retry budget and the circuit breaker. `f` receives the client
   * and returns a Prisma promise; a retry may run it again, so it must not
   * have side effects outside the database.
   *
   * @example
   * ```ts
   * const order = Db.query((c) => c.purchaseOrder.findUnique({ where: { id } })) // Effect<PurchaseOrder | null, DatabaseError, Db>
   * ```
   */
  readonly query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions) => Effect.Effect<A, DatabaseError, Self>
  /**
   * An interactive transaction: each attempt a transaction of its own, with
   * the attempt timeout; retried only when no part of it can have committed
   * (or, with `idempotent: true`, after its commit was verified not to have
   * happened).
   *
   * @example
   * ```ts
   * const moved = Db.transaction(async (tx) => {
   *   await tx.account.update({ where: { id: from }, data: { balanceCents: { decrement: 100 } } })
   *   return tx.account.update({ where: { id: to }, data: { balanceCents: { increment: 100 } } })
   * })
   * ```
   */
  readonly transaction: <A>(
    f: (tx: TransactionClient<C>) => Promise<A>,
    options?: TransactionOptions
  ) => Effect.Effect<A, DatabaseError, Self>
  /**
   * This database's health (see `health`): fails before warm-up, while the
   * probe or the query path fails, while the circuit is open.
   *
   * @example
   * ```ts
   * const report = yield* Db.health // { status: "pass", latencyMs, warmupMs, … }
   * ```
   */
  readonly health: Effect.Effect<HealthReport, HealthError, Self>
}

const Tag = <const Id extends string>(id: Id, name: string = id) =>
<Self, C extends PrismaClientLike>(): DatabaseTag<Self, Id, C> => {
  const tag = Context.Service<Self, DatabaseService<C>>()(id)
  const named = (options: LayerOptions<C>): LayerOptions<C> => options.name === undefined ? { ...options, name } : options
  return Object.assign(tag, {
    make: (options: LayerOptions<C>) => make(named(options)),
    layer: (options: LayerOptions<C>) => Layer.effect(tag, make(named(options))),
    layerConfig: (options: LayerOptions<C>) => Layer.effect(tag, makeConfig(named(options))),
    query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions): Effect.Effect<A, DatabaseError, Self> =>
      Effect.withFiber((fiber) => {
        const db = Context.getUnsafe(fiber.context as Context.Context<Self>, tag)
        const queryIn = queriesIn.get(db)
        return queryIn === undefined ? db.query(f, options) : queryIn(fiber, f, options)
      }),
    transaction: <A>(f: (tx: TransactionClient<C>) => Promise<A>, options?: TransactionOptions) =>
      Effect.flatMap(tag, (db) => db.transaction(f, options)),
    health: Effect.flatMap(tag, checkHealth)
  })
}

/**
 * The default database tag, for apps with one database: its client type is
 * not fixed, so annotate the query function's parameter
 * (`Database.query((c: PrismaClient) => …)`), or bind it once with
 * `Database.Tag("Db")<Db, PrismaClient>()`.
 *
 * @since 0.1.0
 */
export class Database extends Tag("@prisma-resilience/core/Database", defaultName)<Database, any>() {
  /**
   * A `Database` tag bound to one client type, with its `make`, layers and
   * accessors: an app declares its database once and its query functions
   * need no annotation; two tags with different keys are two databases in
   * one context.
   *
   * @example
   * ```ts
   * class Db extends Database.Tag("Db")<Db, PrismaClient>() {}
   * const DbLive = Db.layerConfig({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })
   * const order = Db.query((c) => c.purchaseOrder.findUnique({ where: { id } }))
   * ```
   *
   * @since 0.1.0
   */
  static readonly Tag = Tag
}

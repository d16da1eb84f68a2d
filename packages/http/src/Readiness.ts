/**
 * `Readiness`: the service is up before the database is. The `Database` layer
 * (the warm-up) is built in the background; until it has been, health fails
 * with `warming` and requests wait for it within their budget. After a failed
 * warm-up it is built again until it succeeds, so the service recovers when
 * the database appears.
 *
 * @since 0.1.0
 */
import {
  ConnectionError,
  connectionConfig,
  Database,
  databaseConfig,
  type DatabaseError,
  type DatabaseService,
  health,
  type HealthError,
  healthFailure,
  type HealthFailureReason,
  type HealthReport,
  type PoolSettings,
  type PoolStats,
  type PrismaClientLike,
  type RetryConfigError,
  RetryPolicy,
  type WarmupError,
  type WarmupConfig,
  type WarmupInfo
} from "@prisma-resilience/core"
import { applyMigrations, makePrismaClient, poolStats } from "./db/index.js"
import { Clock, type Config, Context, Data, Deferred, Duration, Effect, Exit, Layer, Option, Redacted, Ref, Schedule, Scope } from "effect"

type ConfigError = Config.ConfigError

type State =
  | { readonly _tag: "Warming"; readonly since: number }
  | { readonly _tag: "Ready"; readonly database: DatabaseService }
  | { readonly _tag: "Failed"; readonly message: string }

/** @since 0.1.0 */
export interface ReadinessService {
  /** The health check: core's `health` once warmed up, `warming`/`unreachable`/`shutting_down` before and after. */
  readonly check: Effect.Effect<HealthReport, HealthError>
  /**
   * The `Database`, for the layer of the handlers: the warmed-up one once
   * warm-up has succeeded, and before that each call waits for it for at most
   * `DB_WARMUP_WAIT_MS` and never past the request budget
   * (`DB_REQUEST_BUDGET_MS`), which then covers the call too; a wait that runs
   * out fails with a `ConnectionError` of code `WARMUP_WAIT` (attempt 0:
   * nothing was sent). Its `warmup` is known only after `ready`.
   */
  readonly database: DatabaseService
  /** Waits for the first successful warm-up. */
  readonly ready: Effect.Effect<WarmupInfo>
  /** Health fails with `shutting_down` from now on; queries keep working. */
  readonly beginShutdown: Effect.Effect<void>
  readonly retryConfig: RetryPolicy.RetryConfig
}

/**
 * The `code` of the `ConnectionError` of a call that waited for warm-up in vain.
 *
 * @since 0.1.0
 */
export const warmupWaitCode = "WARMUP_WAIT"

/** @since 0.1.0 */
export class Readiness extends Context.Service<Readiness, ReadinessService>()("@prisma-resilience/http/Readiness") {}

/** @since 0.1.0 */
export interface Options<C extends PrismaClientLike> {
  readonly client: (pool: PoolSettings) => C
  readonly poolStats?: (client: C) => PoolStats | undefined
  /** Runs before each warm-up, e.g. applying migrations; its failure is retried like a failed warm-up. */
  readonly prepare?: Effect.Effect<void, PrepareError>
  /** the connection string, handed to `client` as `pool.connectionString` (the writer's, for a multi-host one) */
  readonly url?: Redacted.Redacted<string>
  /** replicas for opted-in reads; default: DATABASE_REPLICA_URLS */
  readonly replicaUrls?: ReadonlyArray<Redacted.Redacted<string>>
}

/**
 * `Options.prepare` failed; `message` must be fit for logs and the health output.
 *
 * @since 0.1.0
 */
export class PrepareError extends Data.TaggedError("PrepareError")<{ readonly message: string }> {}

// After a warm-up gave up (DB_WARMUP_TIMEOUT_MS) or preparing (migrations)
// failed, the pause before the next try: the warm-up's own backoff, so that a
// database that comes up late is used within one capped delay. One connection
// attempt per second at most is no load for a database that is down.
const rewarm = (warmup: WarmupConfig) =>
  Schedule.min([Schedule.exponential(Duration.millis(warmup.backoffMs)), Schedule.spaced(Duration.millis(warmup.backoffMaxMs))])

const describe = (error: PrepareError | WarmupError | RetryConfigError | ConfigError): string =>
  error._tag === "WarmupError" || error._tag === "RetryConfigError" || error._tag === "PrepareError"
    ? error.message
    : String(error)

/** What the parts of one `Readiness` share. */
interface Shared {
  readonly state: Ref.Ref<State>
  readonly shuttingDown: Ref.Ref<boolean>
  /** completed by the first successful warm-up */
  readonly database: Deferred.Deferred<DatabaseService>
  /** `database`'s value, for the warm path of the facade */
  warm: DatabaseService | undefined
  readonly retryConfig: RetryPolicy.RetryConfig
  readonly warmup: WarmupConfig
}

/**
 * Builds `databaseLayer` in the background until it succeeds, each attempt in
 * a scope of its own so that a failed one leaves nothing behind.
 */
const warmInBackground = <E extends PrepareError | WarmupError | RetryConfigError | ConfigError>(
  shared: Shared,
  scope: Scope.Scope,
  databaseLayer: Layer.Layer<Database, E>,
  prepare: Effect.Effect<void, PrepareError> | undefined
) =>
  Effect.gen(function*() {
    if (prepare) yield* prepare
    const attemptScope = yield* Scope.fork(scope, "sequential")
    const context = yield* Layer.buildWithScope(databaseLayer, attemptScope).pipe(
      Effect.onError((cause) => Scope.close(attemptScope, Exit.failCause(cause)))
    )
    return Context.get(context, Database)
  }).pipe(
    Effect.tapError((error: PrepareError | E) =>
      Effect.gen(function*() {
        const current = yield* Ref.get(shared.state)
        const now = yield* Clock.currentTimeMillis
        // Migrations fail fast while the database is still starting: that is
        // still warming up, until the warm-up timeout says otherwise.
        const stillWarming = error._tag === "PrepareError" && current._tag === "Warming" &&
          now - current.since < shared.warmup.timeoutMs
        if (stillWarming) return yield* Effect.logWarning(`Database not ready yet: ${describe(error)}`)
        yield* Ref.set(shared.state, { _tag: "Failed", message: describe(error) })
        yield* Effect.logError(`Database not ready: ${describe(error)}`)
      })
    ),
    Effect.retry({
      schedule: rewarm(shared.warmup),
      while: (error) => error._tag === "WarmupError" || error._tag === "PrepareError"
    }),
    Effect.flatMap((db) =>
      Effect.gen(function*() {
        yield* Ref.set(shared.state, { _tag: "Ready", database: db })
        shared.warm = db
        if (yield* Ref.get(shared.shuttingDown)) yield* db.beginShutdown
        yield* Deferred.succeed(shared.database, db)
      })
    ),
    Effect.forkIn(scope)
  )

// Counted and logged as core's own health failures are.
const fail = (reason: HealthFailureReason, message: string) => healthFailure(reason, message)

/** Core's `health` once warmed up; `warming`, `unreachable` or `shutting_down` before and after. */
const checkOf = (shared: Shared): Effect.Effect<HealthReport, HealthError> =>
  Effect.gen(function*() {
    const current = yield* Ref.get(shared.state)
    if (current._tag === "Ready") return yield* Effect.provideService(health, Database, current.database)
    if (yield* Ref.get(shared.shuttingDown)) return yield* fail("shutting_down", "the service is shutting down")
    if (current._tag === "Failed") return yield* fail("unreachable", current.message)
    const elapsed = (yield* Clock.currentTimeMillis) - current.since
    return yield* fail("warming", `database warm-up in progress for ${elapsed} ms`)
  })

/**
 * `use` of the warmed-up database; before warm-up, after waiting for it at
 * most DB_WARMUP_WAIT_MS and never past the request's deadline, which then
 * covers the call too. Provided once, in the handlers' layer, this costs a
 * request nothing; providing the warmed-up database and a budget to every
 * request took two context operations, about 30 µs of CPU per request.
 */
const afterWarmup = <A>(
  shared: Shared,
  operation: string | undefined,
  use: (db: DatabaseService) => Effect.Effect<A, DatabaseError>
): Effect.Effect<A, DatabaseError> =>
  shared.warm !== undefined ? use(shared.warm) : Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const deadline = RetryPolicy.deadlineOf(yield* RetryPolicy.currentDeadline, shared.retryConfig, now)
    const waitMs = Math.max(0, Math.min(shared.retryConfig.warmupWaitMs, deadline - now))
    const db = yield* Deferred.await(shared.database).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(waitMs),
        orElse: () =>
          Effect.fail(new ConnectionError({
            operation: operation ?? "unknown",
            attempt: 0,
            safety: "before-send",
            code: warmupWaitCode,
            message: `the database is not ready yet (waited ${waitMs} ms for warm-up)`,
            cause: undefined
          }))
      })
    )
    return yield* Effect.provideService(use(db), RetryPolicy.currentDeadline, deadline)
  })

/** The `Database` the handlers use: see `ReadinessService.database`. */
const facadeOf = (shared: Shared): DatabaseService => {
  // Only query, transaction, ping and probe wait within a budget; the rest are
  // the database's own state, which exists once warm-up has succeeded.
  const onceWarm = <A>(use: (db: DatabaseService) => Effect.Effect<A>): Effect.Effect<A> =>
    Effect.suspend(() => (shared.warm !== undefined ? use(shared.warm) : Effect.flatMap(Deferred.await(shared.database), use)))
  return {
    query: (f, options) => afterWarmup(shared, options?.operation, (db) => db.query(f, options)),
    transaction: (f, options) => afterWarmup(shared, options?.operation, (db) => db.transaction(f, options)),
    ping: (timeoutMs) => afterWarmup(shared, "ping", (db) => db.ping(timeoutMs)),
    probe: afterWarmup(shared, "health", (db) => db.probe),
    get warmup() {
      if (shared.warm === undefined) throw new Error("Readiness.database.warmup read before warm-up succeeded")
      return shared.warm.warmup
    },
    retryConfig: shared.retryConfig,
    warmupConfig: shared.warmup,
    state: onceWarm((db) => db.state),
    beginShutdown: onceWarm((db) => db.beginShutdown),
    poolStats: onceWarm((db) => db.poolStats),
    circuit: onceWarm((db) => db.circuit),
    retryBudgetTokens: onceWarm((db) => db.retryBudgetTokens),
    queryPath: onceWarm((db) => db.queryPath),
    nodes: onceWarm((db) => db.nodes)
  }
}

/** @since 0.1.0 */
export const make = <C extends PrismaClientLike>(options: Options<C>) =>
  Effect.gen(function*() {
    // Read and checked before the server listens, so that a bad configuration
    // stops the start with its message instead of failing every warm-up.
    const settings = yield* databaseConfig
    const retryConfig = yield* RetryPolicy.validate(settings.retry)
    const replicaUrls = options.replicaUrls ?? Option.toArray((yield* connectionConfig).replicaUrls)
    const databaseLayer = Database.layer({
      client: options.client,
      ...(options.poolStats ? { poolStats: options.poolStats } : {}),
      ...(options.url ? { url: options.url } : {}),
      replicaUrls,
      ...settings
    })
    const shared: Shared = {
      state: yield* Ref.make<State>({ _tag: "Warming", since: yield* Clock.currentTimeMillis }),
      shuttingDown: yield* Ref.make(false),
      database: yield* Deferred.make<DatabaseService>(),
      warm: undefined,
      retryConfig,
      warmup: settings.warmup
    }
    yield* warmInBackground(shared, yield* Effect.scope, databaseLayer, options.prepare)
    const beginShutdown = Effect.gen(function*() {
      yield* Ref.set(shared.shuttingDown, true)
      const current = yield* Ref.get(shared.state)
      if (current._tag === "Ready") yield* current.database.beginShutdown
    })
    return Readiness.of({
      check: checkOf(shared),
      database: facadeOf(shared),
      ready: Effect.map(Deferred.await(shared.database), (db) => db.warmup),
      beginShutdown,
      retryConfig
    })
  })

/** @since 0.1.0 */
export const layer = <C extends PrismaClientLike>(options: Options<C>) => Layer.effect(Readiness, make(options))

/**
 * Readiness of the purchase-order database at `url`; with `migrate`, pending
 * migrations are applied first, so no query runs against an old schema.
 *
 * @since 0.1.0
 */
export const layerUrl = (url: Redacted.Redacted<string>, options?: { readonly migrate?: boolean }) =>
  layer({
    client: (pool) => makePrismaClient(pool.connectionString ?? Redacted.value(url), pool),
    url,
    poolStats,
    ...(options?.migrate ? { prepare: migrate(url) } : {})
  })

/**
 * Applies pending migrations (under an advisory lock, so replicas can race safely).
 *
 * @since 0.1.0
 */
export const migrate = (url: Redacted.Redacted<string>): Effect.Effect<void, PrepareError> =>
  Effect.suspend(() => {
    const lines: Array<string> = []
    return Effect.tryPromise({
      try: () => applyMigrations(Redacted.value(url), { log: (line) => lines.push(line) }),
      catch: (error) =>
        new PrepareError({
          message: `migrations failed: ${
            (error instanceof Error ? error.message : String(error)).replaceAll(Redacted.value(url), "***")
          }`
        })
    }).pipe(
      Effect.flatMap(({ applied, skipped }) =>
        Effect.forEach(
          [...lines.map((line) => `Migration ${line}`), `Migrations: ${applied.length} applied, ${skipped.length} already applied`],
          (line) => Effect.logInfo(line),
          { discard: true }
        )
      )
    )
  })

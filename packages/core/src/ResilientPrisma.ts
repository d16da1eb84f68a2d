/**
 * `createResilientPrisma`: the `Database` layer for ordinary Promise code. One
 * `ManagedRuntime` holds the layer; every call is one request through the
 * service it provides, so warm-up, retries, the request budget, the retry
 * budget, the circuit breaker, metrics and health are the Effect API's own.
 *
 * ```ts
 * // DATABASE_URL (or `url`) reaches the factory as `pool.connectionString`.
 * const db = createResilientPrisma({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })
 * await db.$ready()
 * const account = await db.account.findUnique({ where: { id } })
 * ```
 */
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Tracer from "effect/Tracer"
import * as Option from "effect/Option"
import {
  config as databaseConfig,
  connectionConfig,
  Database,
  type DatabaseService,
  type LayerOptions,
  type PrismaClientLike,
  type QueryOptions,
  queryNowOf,
  type Settings,
  type TransactionClient,
  type TransactionOptions,
  type WarmupInfo
} from "./Database.js"
import {
  ConnectionError,
  type DatabaseError,
  HealthError,
  type HealthFailureReason,
  type RetryConfigError,
  WarmupError
} from "./Errors.js"
import { health, type HealthReport } from "./Health.js"
import { classificationOf as classificationOfError, toCallerError } from "./internal/adapterErrors.js"
import { ONE_CALL } from "@prisma-resilience/kernel/recording"
import { overlay } from "@prisma-resilience/kernel/settings"
import { batchOf, fluent, isFluent, LazyRequest } from "./internal/adapterRequest.js"
import { checkConnectionStrings, type ConnectionStrings, missingUrl } from "./internal/connection.js"
import { kindOfCall, kindOfMethod } from "@prisma-resilience/kernel/safety"
import { redact } from "@prisma-resilience/kernel/redact"
import * as Metrics from "./internal/metrics.js"
import * as RetryPolicy from "./RetryPolicy.js"

/** `Database.layer`'s options; settings not given are read from the `DB_*` variables. */
export type ResilientPrismaOptions<C extends PrismaClientLike> = LayerOptions<C>

/** Prisma's own options of `$transaction`, batch or interactive. */
interface PrismaTransactionOptions {
  readonly maxWait?: number
  readonly timeout?: number
  readonly isolationLevel?: TransactionOptions["isolationLevel"]
}

// The client's `$` methods the adapter serves with the client's own types.
type ClientMethod =
  | "$transaction"
  | "$queryRaw"
  | "$executeRaw"
  | "$queryRawUnsafe"
  | "$executeRawUnsafe"
  | "$queryRawTyped"
  | "$extends"
  | "$on"
  | "$connect"

/**
 * The client's own type, every call going through the layer: its model
 * delegates (calls lazy like Prisma's, with the fluent relation API) and its
 * `$transaction` (batch and interactive, with `timeout`, `maxWait`,
 * `isolationLevel`), raw queries, `$extends`, `$on`, `$connect`, plus the
 * layer's `$ready`, `$query`, `$health`. Not served: a model's `fields`
 * (field references need a client before warm-up). See the README's
 * compatibility table.
 *
 * @since 0.1.0
 */
export type ResilientPrisma<C extends PrismaClientLike> =
  & { readonly [K in keyof C as K extends `$${string}` ? never : K extends string ? K : never]: Omit<C[K], "fields"> }
  & Pick<C, Extract<keyof C, ClientMethod>>
  & {
    /**
     * Resolves once warm-up has finished; rejects with its `WarmupError`. After
     * a failed warm-up, a call made `warmup.backoffMaxMs` later starts a new one.
     */
    readonly $ready: () => Promise<WarmupInfo>
    /** `Database.query`: `f` receives the client and returns a Prisma promise. */
    readonly $query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions) => Promise<A>
    /**
     * `Database.transaction` with the layer's own options (`idempotent`,
     * `retry`, `operation`, `replica`) besides Prisma's: run again whole when
     * the layer knows the attempt was rolled back.
     */
    readonly $transaction: <A>(
      f: (tx: TransactionClient<C>) => Promise<A>,
      options?: TransactionOptions & PrismaTransactionOptions
    ) => Promise<A>
    /** `health`, without waiting: rejects with `warming` until warm-up has finished. */
    readonly $health: () => Promise<HealthReport>
    /** Closes the layer's scope: disconnects within `warmup.shutdownTimeoutMs`; every later call rejects. */
    readonly $disconnect: () => Promise<void>
  }

type Run = <A, E>(effect: Effect.Effect<A, E, Database>) => Promise<A>

/** A query run as `Database.query` runs it; `deadlineMs` when the request started before warm-up ended. */
type Query<C> = <A>(f: (client: C) => PromiseLike<A>, options: QueryOptions | undefined, deadlineMs?: number) => Promise<A>

interface Warm<C> {
  readonly _tag: "Warm"
  readonly service: DatabaseService<C>
  readonly run: Run
  readonly query: Query<C>
}

type Outcome<C> =
  | Warm<C>
  | { readonly _tag: "Failed"; readonly error: unknown; readonly at: number }

/** One build of the layer: a failed warm-up is followed by a new one, never reused. */
interface Generation<C> {
  readonly managed: ManagedRuntime.ManagedRuntime<Database, WarmupError | RetryConfigError>
  readonly since: number
  outcome: Outcome<C> | undefined
  readonly settled: Promise<Outcome<C>>
}

// Promise callers get the typed error itself, never a FiberFailure wrapper;
// a defect is rejected as the value that was thrown.
const reason = (cause: Cause.Cause<unknown>): unknown =>
  Option.getOrElse(Cause.findErrorOption(cause), () => Cause.squash(cause))

/**
 * The layer's classification of an error a `createResilientPrisma` call
 * rejected with: the `DatabaseError` itself, or, for Prisma's own error (P2002,
 * P2025, a validation error, which reach the caller unchanged), the
 * `QueryError` the layer classified it as (`safety`, `attempt`, `operation`).
 * `undefined` for anything else.
 *
 * @example
 * ```ts
 * try {
 *   await db.user.create({ data })
 * } catch (e) {
 *   if (e instanceof Prisma.PrismaClientKnownRequestError && e.code === "P2002") return conflict()
 *   log(classificationOf(e)?.safety)
 * }
 * ```
 *
 * @since 0.2.0
 */
export const classificationOf: (error: unknown) => DatabaseError | undefined = classificationOfError

// Effect 3 needed a scheduler of our own here (resuming a fiber in place
// when the driver's promise settled); Effect 4's default dispatcher is
// cheaper than that was, so calls run on it.
const runner = (context: Context.Context<Database>) => {
  const runFork = Effect.runForkWith(context)
  return <A, E>(effect: Effect.Effect<A, E, Database>, resolve: (value: A) => void, reject: (reason: unknown) => void) =>
    runFork(effect).addObserver((exit) =>
      Exit.isSuccess(exit) ? resolve(exit.value) : reject(toCallerError(reason(exit.cause)))
    )
}

// Effect's own tracer: while it is in place nobody collects spans.
const defaultTracer = Effect.runSync(Effect.tracer)

/** `effect` under the deadline of a request that waited for warm-up. */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>, deadlineMs: number | undefined) =>
  deadlineMs === undefined ? effect : Effect.provideService(effect, RetryPolicy.currentDeadline, deadlineMs)

const warm = <C>(context: Context.Context<Database>): Warm<C> => {
  const service = Context.get(context, Database) as DatabaseService<C>
  const runWith = runner(context)
  const run: Run = (effect) => new Promise((resolve, reject) => runWith(effect, resolve, reject))
  const queryNow = queryNowOf(service)
  // A fiber per call cost more than the rest of the layer: the first attempt
  // runs without one, and a fiber starts only to continue after a failure.
  // Not with a tracer (the span needs the fiber), nor with several nodes
  // (replica routing, read-your-writes, the wait for a new writer).
  if (queryNow !== undefined && Context.get(context, Tracer.Tracer) === defaultTracer) {
    return {
      _tag: "Warm",
      service,
      run,
      query: (f, options, deadlineMs) =>
        new Promise((resolve, reject) => queryNow(f, options, deadlineMs, resolve, (rest) => runWith(rest, resolve, reject)))
    }
  }
  return {
    _tag: "Warm",
    service,
    run,
    query: (f, options, deadlineMs) => run(within(service.query(f, options), deadlineMs))
  }
}

// Read and checked once, at creation: the wait for warm-up needs the retry
// policy before the layer exists, and a configuration that cannot work should
// stop the app at start-up, not fail each call.
/**
 * Every setting, as `layerConfig` reads them: the `DB_*` variables,
 * DATABASE_URL and DATABASE_REPLICA_URLS, each overridden by `options`;
 * checked now, so that a bad setting throws from `createResilientPrisma`.
 */
const settingsOf = <C extends PrismaClientLike>(options: LayerOptions<C>): Settings & ConnectionStrings => {
  const exit = Effect.runSyncExit(Effect.flatMap(Effect.all([databaseConfig, connectionConfig]), ([base, connection]) => {
    const settings = overlay(base, options)
    return Effect.flatMap(RetryPolicy.validate(settings.retry), () =>
      Effect.try({
        try: () => {
          const url = options.url ?? Option.getOrUndefined(connection.url)
          if (url === undefined) throw missingUrl()
          return { ...settings, ...checkConnectionStrings(url, options.replicaUrls ?? Option.toArray(connection.replicaUrls)) }
        },
        catch: (error) => error as RetryConfigError
      }))
  }).pipe(
    // Effect 4's default provider keeps the environment it first saw; the
    // adapter reads the environment as it is when the client is created.
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord({ ...process.env }))
  ))
  if (Exit.isSuccess(exit)) return exit.value
  const error = reason(exit.cause)
  // RetryConfigError is an Error; a ConfigError is not: give it a stack and a message.
  if (error instanceof Error) throw error
  throw new Error(`invalid database configuration: ${String(error)}`, { cause: error })
}

/** A request that never reached the database: `attempt` 0, no attempt was made. */
const notSent = (operation: string, code: string, message: string, cause: unknown, safety: DatabaseError["safety"]) =>
  new ConnectionError({ operation, attempt: 0, safety, code, message, cause })

const disconnected = (operation: string) =>
  notSent(operation, "DISCONNECTED", "the client was disconnected ($disconnect)", undefined, "never")

const describeFailure = (error: unknown) => redact(error instanceof Error ? error.message : String(error))

// Before-send: nothing reached the database, and a later call starts a new warm-up.
const warmupFailed = (operation: string, error: unknown) =>
  error instanceof WarmupError
    ? notSent(operation, "WARMUP_FAILED", `the database is not ready: ${error.message}`, error, "before-send")
    : error

const healthFailure = (reason: HealthFailureReason, message: string, cause?: DatabaseError): Promise<never> => {
  Metrics.record(Metrics.healthChecks, 1, Metrics.resultLabels(reason))
  Effect.runFork(Effect.logInfo(`Health check failed: ${reason}: ${message}`))
  return Promise.reject(new HealthError({ reason, message, latencyMs: undefined, warmupMs: undefined, cause }))
}

/**
 * The layer's life for Promise callers: warm-up generations (a failed one is
 * replaced by the next call, at most once per `backoffMaxMs`), the wait for
 * warm-up within a call's budget, and closing.
 */
class Lifecycle<C extends PrismaClientLike> {
  closed = false
  disconnecting: Promise<void> | undefined
  current: Generation<C>
  constructor(
    private readonly layer: Layer.Layer<Database, WarmupError | RetryConfigError>,
    readonly settings: Settings,
    readonly on: (event: string, listener: (event: unknown) => void) => void
  ) {
    this.current = this.start()
  }

  ready(): Promise<WarmupInfo> {
    if (this.closed) return Promise.reject(disconnected("$ready"))
    return this.generation().settled.then((outcome) => {
      if (this.closed) throw disconnected("$ready")
      if (outcome._tag === "Failed") throw outcome.error
      return outcome.service.warmup
    })
  }

  start(): Generation<C> {
    const managed = ManagedRuntime.make(this.layer)
    const generation: Generation<C> = {
      managed,
      since: Date.now(),
      outcome: undefined,
      // Started now, so that the first request usually finds a warm database;
      // runPromiseExit never rejects, so a failed warm-up nobody awaits is no
      // unhandled rejection.
      settled: Effect.runPromiseExit(managed.contextEffect).then((exit) => {
        if (Exit.isSuccess(exit)) {
          generation.outcome = warm(exit.value)
        } else {
          generation.outcome = { _tag: "Failed", error: reason(exit.cause), at: Date.now() }
          Effect.runFork(managed.disposeEffect)
        }
        return generation.outcome
      })
    }
    return generation
  }

  // A failed warm-up is retried by the next call, but not sooner than the
  // warm-up's capped backoff: a database refusing every connection should
  // see at most one warm-up per `backoffMaxMs`, whatever the request rate.
  generation(): Generation<C> {
    const outcome = this.current.outcome
    if (outcome?._tag === "Failed" && Date.now() - outcome.at >= this.settings.warmup.backoffMaxMs) {
      this.current = this.start()
    }
    return this.current
  }

  awaitWarm(operation: string, waitMs: number): Promise<Warm<C>> {
    const waiting = this.generation()
    if (waiting.outcome?._tag === "Failed") return Promise.reject(warmupFailed(operation, waiting.outcome.error))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() =>
        reject(notSent(
          operation,
          "WARMUP_WAIT",
          `the database is not ready yet: warm-up still running after waiting ${waitMs} ms`,
          undefined,
          "before-send"
        )), waitMs)
      waiting.settled.then((outcome) => {
        clearTimeout(timer)
        if (this.closed) reject(disconnected(operation))
        else if (outcome._tag === "Warm") resolve(outcome)
        else reject(warmupFailed(operation, outcome.error))
      })
    })
  }

  // One call is one request: during warm-up it waits at most `warmupWaitMs`,
  // and its deadline counts from the call, not from the end of the wait.
  request<A>(
    operation: string,
    retry: Partial<RetryPolicy.RetryConfig> | undefined,
    send: (warm: Warm<C>, deadlineMs?: number) => Promise<A>
  ): Promise<A> {
    if (this.closed) return Promise.reject(disconnected(operation))
    const outcome = this.current.outcome
    if (outcome?._tag === "Warm") return send(outcome)
    const started = Date.now()
    const budgetMs = retry?.requestBudgetMs ?? this.settings.retry.requestBudgetMs
    const waitMs = Math.min(retry?.warmupWaitMs ?? this.settings.retry.warmupWaitMs, budgetMs)
    return this.awaitWarm(operation, waitMs).then((warm) => send(warm, started + budgetMs))
  }

  readonly query = <A>(f: (client: C) => PromiseLike<A>, queryOptions: QueryOptions | undefined): Promise<A> => {
    // The usual case first, without the closure `request` takes.
    const outcome = this.current.outcome
    if (!this.closed && outcome?._tag === "Warm") return outcome.query(f, queryOptions)
    return this.request(queryOptions?.operation ?? "query", queryOptions?.retry, (warm, deadlineMs) =>
      warm.query(f, queryOptions, deadlineMs))
  }

  health(): Promise<HealthReport> {
    if (this.closed) return healthFailure("shutting_down", "the client was disconnected ($disconnect)")
    const checked = this.generation()
    const outcome = checked.outcome
    if (outcome === undefined) {
      return healthFailure("warming", `database warm-up in progress for ${Date.now() - checked.since} ms`)
    }
    if (outcome._tag === "Failed") {
      return healthFailure(
        "unreachable",
        describeFailure(outcome.error),
        outcome.error instanceof WarmupError ? outcome.error.cause : undefined
      )
    }
    return outcome.run(health)
  }

  disconnect(): Promise<void> {
    if (this.disconnecting === undefined) {
      this.closed = true
      // Interrupts a warm-up still running; failed generations were disposed already.
      this.disconnecting = this.current.managed.dispose()
    }
    return this.disconnecting
  }
}

/** How a view reaches its client: the base client, or one `$extends` chain over it. */
type MapClient = ((client: any) => any) | undefined

/** A model's delegate: each method call one lazy request of exactly one call, built once per method. */
const modelView = <C extends PrismaClientLike>(life: Lifecycle<C>, model: string, map: MapClient) => {
  const methods = new Map<string, (...args: Array<unknown>) => LazyRequest<unknown>>()
  return new Proxy({}, {
    get(_, method) {
      if (typeof method !== "string" || method === "then" || method === "fields") return undefined
      let call = methods.get(method)
      if (call === undefined) {
        // Built once per model and method: a call allocates only its request.
        const name = `${model}.${method}`
        const queryOptions = { operation: name, [ONE_CALL]: kindOfMethod(name) } as QueryOptions
        const withFluent = isFluent(method)
        call = (...args) => {
          const request = new LazyRequest(life.query, (client) => client[model][method](...args), queryOptions, map)
          return withFluent ? fluent(request) : request
        }
        methods.set(method, call)
      }
      return call
    }
  })
}

/** A raw query method (`$queryRaw`, `$executeRawUnsafe`, …): a read only when its SQL is one. */
const rawMethod = (life: Lifecycle<any>, name: string, map: MapClient) => (...args: Array<unknown>) =>
  new LazyRequest(life.query, (client) => client[name](...args), {
    operation: name,
    [ONE_CALL]: kindOfCall(name, args) ?? "write"
  } as QueryOptions, map)

/**
 * Prisma's `$transaction` options as the layer's: `timeout` bounds each
 * attempt (`retry.attemptTimeoutMs`), never past the request's budget (a
 * request ends within its budget whatever a call asks: give
 * `retry.requestBudgetMs` too for a transaction that needs longer);
 * `maxWait` and `isolationLevel` pass to Prisma unchanged.
 */
const transactionOptions = (
  options: (TransactionOptions & PrismaTransactionOptions) | undefined
): TransactionOptions | undefined => {
  const timeout = options?.timeout
  if (timeout === undefined) return options
  return { ...options, retry: { ...options?.retry, attemptTimeoutMs: timeout } }
}

/** `$transaction`: a batch of this client's calls as one transaction, or an interactive one. */
const transactionOf = <C extends PrismaClientLike>(life: Lifecycle<C>) =>
(
  f: ((tx: any) => Promise<unknown>) | ReadonlyArray<unknown>,
  given?: TransactionOptions & PrismaTransactionOptions
): Promise<unknown> => {
  let options = transactionOptions(given)
  let run: (tx: any) => Promise<unknown>
  if (Array.isArray(f)) {
    let batch: ReturnType<typeof batchOf>
    try {
      batch = batchOf(f)
    } catch (error) {
      return Promise.reject(error)
    }
    run = batch.run
    // All reads: running them again can change nothing.
    options = { operation: "$transaction([…])", ...options, idempotent: options?.idempotent ?? batch.reads }
  } else {
    run = f as (tx: any) => Promise<unknown>
  }
  return life.request(options?.operation ?? "$transaction", options?.retry, (warm, deadlineMs) =>
    warm.run(within(warm.service.transaction(run, options), deadlineMs)))
}

/** The `$` methods of one view of the adapter: the base client's, or an `$extends` chain's. */
const methodsOf = <C extends PrismaClientLike>(life: Lifecycle<C>, map: MapClient) => ({
  $ready: (): Promise<WarmupInfo> => life.ready(),
  $connect: (): Promise<void> => life.ready().then(() => undefined),
  $query: <A>(f: (client: C) => PromiseLike<A>, queryOptions?: QueryOptions) =>
    life.query(map === undefined ? f : (client) => f(map(client)), queryOptions),
  // The layer runs transactions on its base client: on an `$extends` view,
  // the transaction client is the base client's (see the README's table).
  $transaction: transactionOf(life),
  $queryRaw: rawMethod(life, "$queryRaw", map),
  $executeRaw: rawMethod(life, "$executeRaw", map),
  $queryRawUnsafe: rawMethod(life, "$queryRawUnsafe", map),
  $executeRawUnsafe: rawMethod(life, "$executeRawUnsafe", map),
  $queryRawTyped: rawMethod(life, "$queryRawTyped", map),
  $on: (event: string, listener: (event: unknown) => void): void => life.on(event, listener),
  $extends: (extension: unknown) => viewOf(life, extended(map, extension)),
  $health: (): Promise<HealthReport> => life.health(),
  $disconnect: (): Promise<void> => life.disconnect()
})

/**
 * `map` followed by `$extends(extension)`, built once per client: Prisma's
 * `$extends` makes a new client object each time, and a call should not.
 */
const extended = (map: MapClient, extension: unknown): MapClient => {
  const clients = new WeakMap<object, unknown>()
  return (client) => {
    const base = map === undefined ? client : map(client)
    let result = clients.get(base)
    if (result === undefined) {
      result = base.$extends(extension)
      clients.set(base, result)
    }
    return result
  }
}

/** The adapter's client object: the `$` methods, and a model view for every other name. */
const viewOf = <C extends PrismaClientLike>(life: Lifecycle<C>, map: MapClient): ResilientPrisma<C> => {
  const methods = methodsOf(life, map)
  const models = new Map<string, object>()
  return new Proxy(methods, {
    get(target, key) {
      if (typeof key !== "string" || key in target || key.startsWith("$") || key === "then") {
        return Reflect.get(target, key)
      }
      let model = models.get(key)
      if (model === undefined) {
        model = modelView(life, key, map)
        models.set(key, model)
      }
      return model
    }
  }) as unknown as ResilientPrisma<C>
}

/**
 * The `Database` layer for Promise code, with the client's own API: model
 * calls (lazy, each one request through the layer, with the fluent relation
 * API), batch and interactive `$transaction`, raw queries, `$extends`, `$on`,
 * `$connect`, plus `$query`, `$ready`, `$health` and `$disconnect`. Prisma's
 * own answers (P2002, P2025, validation) reject with Prisma's error object
 * (see `classificationOf`). Settings not given are read as `layerConfig`
 * reads them (DATABASE_URL, DATABASE_REPLICA_URLS, `DB_*`) and checked now: a
 * bad one throws here.
 *
 * @example
 * ```ts
 * const db = createResilientPrisma({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })
 * const order = await db.purchaseOrder.findUnique({ where: { id } })
 * const [a, b] = await db.$transaction([db.user.count(), db.post.count()])
 * ```
 *
 * @since 0.1.0
 */
export const createResilientPrisma = <C extends PrismaClientLike>(
  options: ResilientPrismaOptions<C>
): ResilientPrisma<C> => {
  const settings = settingsOf(options)
  const listeners: Array<readonly [string, (event: unknown) => void]> = []
  const clients = new Set<C>()
  // Every client the layer builds gets the `$on` listeners registered so far;
  // one registered later is added to the clients already built.
  const client = (pool: Parameters<typeof options.client>[0]): C => {
    const built = options.client(pool)
    for (const [event, listener] of listeners) onOf(built)?.(event, listener)
    clients.add(built)
    return built
  }
  const life = new Lifecycle<C>(Database.layer({ ...options, ...settings, client }), settings, (event, listener) => {
    listeners.push([event, listener])
    for (const built of clients) onOf(built)?.(event, listener)
  })
  return viewOf(life, undefined)
}

const onOf = (client: unknown) => {
  const on = (client as { $on?: (event: string, listener: (event: unknown) => void) => void }).$on
  return typeof on === "function" ? on.bind(client) : undefined
}

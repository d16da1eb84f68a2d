/**
 * `Database`: the service every query goes through. Its layer is the warm-up:
 * it builds the user's Prisma client, connects and probes it with `SELECT 1`
 * (retried with a capped backoff, bounded by a timeout) and only then provides
 * the service; releasing the scope disconnects.
 */
import {
  Clock,
  type ConfigError,
  Context,
  Duration,
  Effect,
  type Fiber,
  Layer,
  FiberRef,
  Metric,
  Option,
  Ref,
  Runtime,
  Schedule,
  type Scope
} from "effect"
import { check as checkHealth } from "./internal/health.js"
import {
  ConnectionError,
  type DatabaseError,
  EmptyResponseError,
  type HealthError,
  QueryError,
  RetryConfigError,
  type RetrySafety,
  TimeoutError,
  TransactionError,
  WarmupError
} from "./Errors.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import {
  ATTEMPT_TIMEOUT,
  awaitWithTimeout,
  type Guard,
  guardedAttempt,
  newRecording,
  oneCallKind,
  recordAttempt,
  type Recover,
  recordDuration,
  startGuardedAttempt
} from "./internal/attempt.js"
import {
  type BeforeCommit,
  beforeCommit,
  commitStatus,
  type RawQueryable,
  transactionBody,
  withStatementLimit
} from "./internal/serverDeadline.js"
import { checkConnectionStrings, missingUrl } from "./internal/connection.js"
import { healthProbe } from "./internal/healthProbe.js"
import { disconnectQuietly, warmUp } from "./internal/warmup.js"
import * as Topology from "./internal/topology.js"
import { isPoolWait } from "./kernel/classify.js"
import * as TopologyKernel from "./kernel/topology.js"
import * as QueryHealth from "./kernel/queryHealth.js"
import { describe } from "./internal/describe.js"
import * as Metrics from "./Metrics.js"
import * as RetryBudget from "./RetryBudget.js"
import * as RetryPolicy from "./RetryPolicy.js"
import {
  config,
  connectionConfig,
  defaults,
  resolveSettings,
  serverLimits
} from "./DatabaseConfig.js"
import type {
  DatabaseService,
  DatabaseState,
  HealthReport,
  LayerOptions,
  PoolSettings,
  PrismaClientLike,
  QueryOptions,
  ServerTimeoutConfig,
  Settings,
  TransactionClient,
  TransactionOptions
} from "./DatabaseService.js"

export * from "./DatabaseConfig.js"
export type * from "./DatabaseService.js"

// The default tracer is Effect's own; while it is in place nobody collects
// spans, and the query path skips creating them.
const defaultTracer = Effect.runSync(Effect.tracer)

const merge = (base: RetryPolicy.RetryConfig, override: Partial<RetryPolicy.RetryConfig> | undefined) =>
  override === undefined ? base : { ...base, ...override }

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

// Whether the current fiber (a request) wrote: its opted-in reads then go to
// the writer, so that it reads what it wrote.
const wroteHere = FiberRef.unsafeMake(false)

/** The connection strings of `options`, checked; the error never holds one. */
const connectionStrings = <C extends PrismaClientLike>(options: LayerOptions<C>) =>
  Effect.try({
    try: () => checkConnectionStrings(options.url, options.replicaUrls),
    catch: (error) => error as RetryConfigError
  })

// A Prisma promise sends nothing until it is awaited.
const isLazy = (promise: PromiseLike<unknown>) =>
  (promise as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === "PrismaPromise"

const errorClasses = { ConnectionError, EmptyResponseError, TimeoutError, TransactionError, QueryError } as const

/** `error` with what the commit check learned: its retry safety and why. */
const withSafety = (error: DatabaseError, safety: RetrySafety, reason: string): DatabaseError =>
  error._tag === "CircuitOpenError" ? error : new errorClasses[error._tag]({
    operation: error.operation,
    attempt: error.attempt,
    safety,
    code: error.code,
    message: `${error.message}; ${reason}`,
    cause: error.cause
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
    const warmupSettings = settings.warmup
    const pool = settings.pool
    const labels = Metrics.databaseLabels(name)
    const ready = Metric.taggedWithLabels(Metrics.ready, labels)
    const limitedPool: PoolSettings = { ...serverLimits(retryConfig, server), ...pool }
    const urls = yield* connectionStrings(options)
    const clock = yield* Effect.clock
    const runtime = yield* Effect.runtime<never>()
    // Transitions happen in promise callbacks, outside any fiber: they are
    // logged through the runtime (loggers, log level) the layer was built with.
    const logTransition = (subject: string) => ({ from, reason, to }: CircuitBreaker.Transition) =>
      Runtime.runFork(runtime)(
        (to === "closed" ? Effect.logInfo : Effect.logWarning)(`${subject} ${from} → ${to}: ${reason}`)
      )
    const topology = yield* Topology.make({
      name,
      plan: urls.plan,
      url: urls.url,
      replicaUrls: urls.replicaUrls,
      makeClient: options.client,
      config: settings.topology,
      probeTimeoutMs: warmupSettings.healthTimeoutMs,
      discoveryTimeoutMs: warmupSettings.timeoutMs,
      shutdownTimeoutMs: warmupSettings.shutdownTimeoutMs,
      makeBreaker: (node) =>
        CircuitBreaker.make(
          settings.circuitBreaker,
          logTransition(`Circuit breaker of replica ${node}`),
          Metrics.nodeLabels(name, node)
        )
    }, limitedPool)
    // The client the queries use now: another one after a failover.
    let current: { readonly client: C } | undefined

    const { client: warmClient, info, node: warmNode, pool: connected } = yield* Effect.acquireRelease(
      // Acquisition is uninterruptible by default, which would keep the warm-up
      // timeout from stopping the retries; each attempt cleans up after itself.
      Effect.interruptible(warmUp(options, limitedPool, warmupSettings, labels, topology)),
      ({ client }) =>
        Effect.gen(function*() {
          yield* Metric.set(ready, 0)
          const started = yield* Clock.currentTimeMillis
          yield* disconnectQuietly(current?.client ?? client, warmupSettings.shutdownTimeoutMs)
          const took = (yield* Clock.currentTimeMillis) - started
          yield* Effect.logInfo(`Database disconnected in ${took} ms`)
        })
    )
    const primary = { client: warmClient, node: warmNode }
    current = primary
    const state = yield* Ref.make<DatabaseState>("serving")

    const poolStats = options.poolStats
    const overloaded = (client: () => C) => (error: DatabaseError) => {
      if (!isPoolWait(error.code)) return false
      // Prisma's P2024 is a pool wait by definition; pg-pool's message is
      // also what a slow new connection gives, so the counts decide.
      if (error.code === "P2024") return true
      const stats = poolStats?.(client())
      return stats !== undefined && (stats.totalCount >= pool.max || stats.waitingCount > 0)
    }
    const nodeLabels = (node: string) => ({
      success: Metrics.nodeResultLabels(name, node, "success"),
      failure: Metrics.nodeResultLabels(name, node, "failure")
    })
    const guard: Guard = {
      budget: RetryBudget.make(settings.retryBudget, labels),
      breaker: CircuitBreaker.make(settings.circuitBreaker, logTransition("Circuit breaker"), labels),
      clock,
      queryHealth: QueryHealth.make(settings.health),
      overloaded: overloaded(() => primary.client),
      generation: 0,
      node: topology.active && primary.node !== undefined ? nodeLabels(primary.node) : undefined,
      // A connection that failed, or a node that says it is not the writer
      // (any more), is how a failover shows: look for the writer once.
      suspect: topology.writerMode
        ? (error) => {
          if ((error._tag === "ConnectionError" && !isPoolWait(error.code)) || TopologyKernel.isWrongNode(error.code)) {
            topology.discover(`${error._tag}${error.code === undefined ? "" : ` (${error.code})`} on ${primary.node}`)
          }
          return error.code === "25006"
        }
        : undefined
    }
    yield* topology.start(() => primary.node, (client, node) =>
      Effect.sync(() => {
        const old = primary.client
        primary.client = client
        primary.node = node
        guard.generation++
        guard.node = nodeLabels(node)
        guard.breaker.reset(`the writer is ${node} now`)
        guard.queryHealth.reset(clock.unsafeCurrentTimeMillis())
        return old
      }))

    // Opted-in reads: one guard per replica, its breaker the topology's.
    const replicas = new Map(topology.replicas.map((replica) => {
      const replicaGuard: Guard = {
        budget: RetryBudget.make(settings.retryBudget, Metrics.nodeLabels(name, replica.name)),
        breaker: replica.breaker,
        clock,
        queryHealth: QueryHealth.make(settings.health),
        overloaded: overloaded(() => replica.client),
        generation: 0,
        node: nodeLabels(replica.name)
      }
      return [replica, { guard: replicaGuard }] as const
    }))

    const readStats = Effect.sync(() => (options.poolStats ? options.poolStats(primary.client) : undefined))
    const sampleStats = Effect.flatMap(readStats, (stats) =>
      stats === undefined ? Effect.void : Effect.all([
        Metric.set(Metric.taggedWithLabels(Metrics.poolTotal, labels), stats.totalCount),
        Metric.set(Metric.taggedWithLabels(Metrics.poolIdle, labels), stats.idleCount),
        Metric.set(Metric.taggedWithLabels(Metrics.poolWaiting, labels), stats.waitingCount)
      ], { discard: true }))
    if (options.poolStats) {
      yield* Effect.forkScoped(Effect.repeat(sampleStats, Schedule.spaced(Duration.seconds(1))))
    }

    // The connection's statement_timeout was made for the layer's attempt
    // timeout; an attempt with another one (a per-call `retry`, or the last
    // attempt before the deadline) carries its own.
    const connectionLimited = connected.statement_timeout !== undefined
    const limited = <A>(promise: () => PromiseLike<A>, timeoutMs: number): () => PromiseLike<A> =>
      !connectionLimited || timeoutMs === retryConfig.attemptTimeoutMs
        ? promise
        : () => withStatementLimit(primary.client, promise(), timeoutMs - server.marginMs)

    // The success path is one synchronous set-up and one attempt: the retry
    // schedule is entered from the failed attempt's callback, spans only
    // when a tracer is installed. Every Effect operation saved here shows up
    // between real round trips (bench/layer-breakdown.ts).
    const prepare = <C2, A>(
      f: (client: C2) => PromiseLike<A>,
      queryOptions: QueryOptions | undefined,
      now: number,
      deadline: number | undefined,
      tracing: boolean
    ) => {
      const started = performance.now()
      const run = f as unknown as (client: C) => PromiseLike<A>
      // One known call needs no recording view (the adapter's model calls:
      // the hot path); any other query function runs on one per attempt.
      const known = oneCallKind(queryOptions)
      let recording = known === undefined ? newRecording() : undefined
      let first: PromiseLike<A>
      try {
        first = recording === undefined ? run(primary.client) : recordAttempt(primary.client, run, recording)
      } catch (error) {
        // A query function that throws before returning its promise is a failed attempt, not a defect.
        first = Promise.reject(error)
      }
      // The Prisma calls actually made decide what a retry may do; a name
      // given in `operation` is only a name.
      const name = queryOptions?.operation ?? recording?.operation ?? "query"
      const kind = queryOptions?.kind ?? known ?? recording?.kind ?? "write"
      const config = queryOptions?.retry === undefined ? retryConfig : merge(retryConfig, queryOptions.retry)
      const deadlineMs = deadline ?? now + config.requestBudgetMs

      const attempt = (n: number, promise: () => PromiseLike<A>, timeoutMs: number, recover?: Recover<A>) => {
        const effect = guardedAttempt(guard, limited(promise, timeoutMs), timeoutMs, name, n, started, recover)
        return tracing
          ? Effect.withSpan(effect, "Database.attempt", { attributes: { "db.operation": name, attempt: n }, kind: "client" })
          : effect
      }
      // Everything below runs only after attempt 1 failed.
      const afterFirstFailure = (error: DatabaseError): Effect.Effect<A, DatabaseError> => {
        // The most dangerous call of every attempt so far, each fenced once
        // it failed: an async query function may write only after an await.
        let worst = known ?? recording?.kind
        const fence = (error: DatabaseError) => {
          if (recording !== undefined) {
            recording.fenced = true
            if (recording.kind === "write" || worst === undefined) worst = recording.kind ?? worst
          }
          // One lazy read is safe to send again: health's canary when SELECT 1 cannot tell.
          const oneRead = known === "read" || (recording?.calls === 1 && recording.kind === "read")
          if (oneRead && error._tag !== "CircuitOpenError" && isLazy(first)) {
            guard.canary = () => f(primary.client as unknown as C2)
          }
        }
        const send = known !== undefined
          ? () => run(primary.client)
          : () => recordAttempt(primary.client, run, (recording = newRecording()))
        const again = (n: number, timeoutMs: number) =>
          attempt(n, send, timeoutMs).pipe(Effect.tapError((error) => Effect.sync(() => fence(error))))
        fence(error)
        // An eager promise (an async query function) that will never be
        // awaited must still be observed; a Prisma promise is lazy, and
        // observing it would send the query the breaker just refused.
        if (error._tag === "CircuitOpenError" && !isLazy(first)) first.then(undefined, () => {})
        return RetryPolicy.continueAfter(
          error,
          ({ attempt: n, timeoutMs }) =>
            topology.discovering()
              ? Effect.zipRight(
                topology.awaitWriter(deadlineMs, guard.clock.unsafeCurrentTimeMillis(), name, n),
                Effect.suspend(() =>
                  again(n, RetryPolicy.attemptTimeout(config, deadlineMs, guard.clock.unsafeCurrentTimeMillis()))
                )
              )
              : again(n, timeoutMs),
          {
            config,
            operation: name,
            get kind() {
              return queryOptions?.kind ?? worst ?? "write"
            },
            deadlineMs,
            budget: guard.budget,
            overloaded: guard.overloaded
          }
        ).pipe(Effect.tapError(() => Effect.sync(() => recordDuration(name, started))))
      }
      const firstTimeoutMs = RetryPolicy.attemptTimeout(config, deadlineMs, now)
      return { first, name, kind, started, attempt, afterFirstFailure, firstTimeoutMs }
    }

    const queryIn = <C2, A>(
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      f: (client: C2) => PromiseLike<A>,
      queryOptions: QueryOptions | undefined
    ): Effect.Effect<A, DatabaseError> => {
      if (topology.active) {
        if (queryOptions?.replica === true && replicas.size > 0) return routed(fiber, f, queryOptions)
        // A failover is being handled: wait for the new writer instead of
        // sending this query to the old one.
        if (topology.discovering()) return afterDiscovery(fiber, queryOptions?.operation ?? "query", query(f, queryOptions))
      }
      const now = fiber.currentDefaultServices.unsafeMap.get(Clock.Clock.key).unsafeCurrentTimeMillis()
      const tracing = fiber.currentTracer !== defaultTracer
      const q = prepare(f, queryOptions, now, fiber.getFiberRef(RetryPolicy.currentDeadline), tracing)
      const firstAttempt = q.attempt(1, () => q.first, q.firstTimeoutMs, q.afterFirstFailure)
      const traced = tracing
        ? Effect.withSpan(firstAttempt, "Database.query", { attributes: { "db.operation": q.name }, kind: "client" })
        : firstAttempt
      return q.kind !== "read" && replicas.size > 0 ? Effect.zipRight(FiberRef.set(wroteHere, true), traced) : traced
    }

    // The first attempt of an untraced query without a fiber, for Promise
    // callers: a fiber is started only to continue after a failure. Only for
    // a single node: replica routing, read-your-writes and the wait for a
    // writer discovery need the fiber, so with a topology the adapter takes
    // `queryIn`.
    const queryNow: QueryNow = <C2, A>(
      f: (client: C2) => PromiseLike<A>,
      queryOptions: QueryOptions | undefined,
      deadline: number | undefined,
      onSuccess: (value: A) => void,
      onFailure: (rest: Effect.Effect<A, DatabaseError>) => void
    ) => {
      const q = prepare(f, queryOptions, guard.clock.unsafeCurrentTimeMillis(), deadline, false)
      startGuardedAttempt(
        guard,
        limited(() => q.first, q.firstTimeoutMs),
        q.firstTimeoutMs,
        q.name,
        1,
        q.started,
        onSuccess,
        (error) => onFailure(q.afterFirstFailure(error))
      )
    }
    const query = <C2, A>(f: (client: C2) => PromiseLike<A>, queryOptions?: QueryOptions) =>
      Effect.withFiberRuntime<A, DatabaseError>((fiber) => queryIn(fiber, f, queryOptions))

    // Waits for the search for the writer within the request's deadline, then
    // runs `then` under the same deadline.
    const afterDiscovery = <A>(
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      operation: string,
      then: Effect.Effect<A, DatabaseError>
    ): Effect.Effect<A, DatabaseError> => {
      const now = guard.clock.unsafeCurrentTimeMillis()
      const deadlineMs = fiber.getFiberRef(RetryPolicy.currentDeadline) ?? now + retryConfig.requestBudgetMs
      return Effect.zipRight(
        topology.awaitWriter(deadlineMs, now, operation, 1),
        Effect.locally(then, RetryPolicy.currentDeadline, deadlineMs)
      )
    }

    const routedTo = (target: "replica" | "primary", reason: TopologyKernel.RoutingReason) =>
      Metrics.replicaRouting.unsafeUpdate(1, Metrics.routingLabels(name, target, reason))

    // An opted-in read: one attempt on a replica that is up and within the lag
    // limit; the writer's ordinary path when there is none, when this fiber
    // wrote before, or when that attempt fails with anything but an answer.
    const routed = <C2, A>(
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      f: (client: C2) => PromiseLike<A>,
      queryOptions: QueryOptions
    ): Effect.Effect<A, DatabaseError> => {
      const onPrimary = { ...queryOptions, replica: false }
      if (fiber.getFiberRef(wroteHere)) {
        routedTo("primary", "read_your_writes")
        return queryIn(fiber, f, onPrimary)
      }
      const now = guard.clock.unsafeCurrentTimeMillis()
      const picked = topology.pick(now)
      if (typeof picked === "string") {
        routedTo("primary", picked)
        return queryIn(fiber, f, onPrimary)
      }
      const recording = newRecording()
      let result: PromiseLike<A>
      try {
        result = recordAttempt(picked.client, f as unknown as (client: C) => PromiseLike<A>, recording)
      } catch {
        recording.fenced = true
        return queryIn(fiber, f, onPrimary)
      }
      // Not sent yet (a Prisma promise is lazy): a write goes to the writer,
      // whatever the caller declared, and nothing more goes to the replica.
      if (recording.kind !== "read" || (queryOptions.kind ?? "read") !== "read") {
        recording.fenced = true
        if (!isLazy(result)) result.then(undefined, () => {})
        return queryIn(fiber, f, onPrimary)
      }
      const operation = queryOptions.operation ?? recording.operation ?? "query"
      const config = queryOptions.retry === undefined ? retryConfig : merge(retryConfig, queryOptions.retry)
      const deadlineMs = fiber.getFiberRef(RetryPolicy.currentDeadline) ?? now + config.requestBudgetMs
      const timeoutMs = RetryPolicy.attemptTimeout(config, deadlineMs, now)
      return onReplica(
        picked,
        operation,
        () => result,
        timeoutMs,
        deadlineMs,
        Effect.suspend(() => {
          recording.fenced = true
          return query(f, onPrimary)
        })
      )
    }

    // One attempt on `replica`; anything but an answer (a unique violation, a
    // missing row) runs `onWriter` instead, under the same deadline.
    const onReplica = <A>(
      replica: Topology.Replica<C>,
      operation: string,
      send: () => PromiseLike<A>,
      timeoutMs: number,
      deadlineMs: number,
      onWriter: Effect.Effect<A, DatabaseError>
    ): Effect.Effect<A, DatabaseError> =>
      guardedAttempt(
        replicas.get(replica)!.guard,
        () =>
          send().then((value) => {
            routedTo("replica", "healthy")
            return value
          }),
        timeoutMs,
        operation,
        1,
        performance.now(),
        (error) => {
          if (error.safety === "never" && error._tag !== "CircuitOpenError") return Effect.fail(error)
          routedTo("primary", "fallback")
          return Effect.zipRight(
            Effect.logDebug(`${operation} on replica ${replica.name} failed: ${describe(error)}; running it on the writer`),
            Effect.locally(onWriter, RetryPolicy.currentDeadline, deadlineMs)
          )
        }
      )

    // Prisma's own limits for one attempt of `timeoutMs`: they end just inside
    // it (by the server margin), so that Prisma rolls back before the
    // attempt's timer fires, and the attempt never outlives its timeout.
    const prismaLimits = (txOptions: TransactionOptions | undefined, timeoutMs: number) => {
      const inside = Math.max(1, timeoutMs - server.marginMs)
      return {
        isolationLevel: txOptions?.isolationLevel,
        maxWait: Math.min(txOptions?.maxWait ?? pool.connectionTimeoutMillis, inside),
        timeout: inside
      }
    }

    const transaction = <C2, A>(
      f: (tx: TransactionClient<C2>) => Promise<A>,
      txOptions?: TransactionOptions
    ): Effect.Effect<A, DatabaseError> =>
      Effect.withFiberRuntime<A, DatabaseError>((fiber) => {
        if (topology.active) {
          if (txOptions?.replica === true && replicas.size > 0) return routedTransaction(fiber, f, txOptions)
          if (topology.discovering()) {
            return afterDiscovery(fiber, txOptions?.operation ?? "$transaction", transaction(f, txOptions))
          }
        }
        const name = txOptions?.operation ?? "$transaction"
        const started = performance.now()
        const config = merge(retryConfig, txOptions?.retry)
        const now = fiber.currentDefaultServices.unsafeMap.get(Clock.Clock.key).unsafeCurrentTimeMillis()
        const deadlineMs = fiber.getFiberRef(RetryPolicy.currentDeadline) ?? now + config.requestBudgetMs
        const run = f as unknown as (tx: RawQueryable) => Promise<A>

        const succeedAfter = (error: DatabaseError, n: number, outcome: string, value: A) =>
          Effect.zipRight(
            Effect.logWarning(
              `${name} attempt ${n}/${RetryPolicy.maxAttempts(config)} failed: ${describe(error)}; ${outcome}: it succeeded`
            ),
            Effect.sync(() => {
              recordDuration(name, started)
              return value
            })
          )
        // The connection failed while the transaction ran or committed: what
        // the attempt saw decides whether its outcome can be known.
        const afterFailure = (
          error: DatabaseError,
          seen: BeforeCommit<A>,
          n: number,
          client: C
        ): Effect.Effect<A, DatabaseError> => {
          if (error.safety !== "ambiguous") return Effect.fail(error)
          if (seen.txid === undefined) {
            // COMMIT is only sent once the function returned; once the
            // promise failed, nothing of this attempt can commit. Our own
            // timer is different: the function may still be running.
            return error.code === ATTEMPT_TIMEOUT
              ? Effect.fail(error)
              : Effect.fail(withSafety(error, "transaction", "it failed before COMMIT, so it was rolled back"))
          }
          if (seen.txid === null) {
            Metrics.commitVerifications.unsafeUpdate(1, Metrics.verificationLabels(name, "no_writes"))
            return succeedAfter(error, n, "the transaction wrote nothing, so its commit did not matter", seen.value as A)
          }
          const left = Math.min(config.attemptTimeoutMs, deadlineMs - guard.clock.unsafeCurrentTimeMillis())
          return Effect.flatMap(commitStatus(client, seen, left, name, n), (status) => {
            Metrics.commitVerifications.unsafeUpdate(1, Metrics.verificationLabels(name, status))
            switch (status) {
              case "committed":
                return succeedAfter(error, n, `txid_status(${seen.txid}) says committed`, seen.value as A)
              case "aborted":
                return Effect.fail(withSafety(error, "transaction", `txid_status(${seen.txid}) says it was rolled back`))
              case "unknown":
                return Effect.fail(withSafety(error, "ambiguous", `commit outcome unknown: txid_status(${seen.txid}) did not tell`))
            }
          })
        }

        const attempt = ({ attempt: n, timeoutMs }: RetryPolicy.AttemptInfo): Effect.Effect<A, DatabaseError> => {
          if (n > 1 && topology.discovering()) {
            const now = guard.clock.unsafeCurrentTimeMillis()
            return Effect.zipRight(
              topology.awaitWriter(deadlineMs, now, name, n),
              Effect.suspend(() =>
                attempt({
                  attempt: n,
                  timeoutMs: RetryPolicy.attemptTimeout(config, deadlineMs, guard.clock.unsafeCurrentTimeMillis())
                })
              )
            )
          }
          const attemptStarted = performance.now()
          const client = primary.client
          const seen = beforeCommit<A>()
          const body = transactionBody(run, () => timeoutMs - (performance.now() - attemptStarted), server.marginMs, seen)
          return guardedAttempt(
            guard,
            () =>
              client.$transaction(body, prismaLimits(txOptions, timeoutMs)) as PromiseLike<A>,
            // The attempt's own bound, not a second longer: Prisma's timeout
            // (set just inside it) rolls back, this one ends the request.
            timeoutMs,
            name,
            n,
            started,
            (error) => afterFailure(error, seen, n, client)
          ).pipe(Effect.withSpan("Database.attempt", { attributes: { "db.operation": name, attempt: n } }))
        }
        return RetryPolicy.retry(attempt, {
          config,
          operation: name,
          kind: txOptions?.idempotent ? "idempotent-write" : "transaction",
          budget: guard.budget,
          overloaded: guard.overloaded
        }).pipe(
          Effect.tapError(() => Effect.sync(() => recordDuration(name, started))),
          Effect.withSpan("Database.transaction", { attributes: { "db.operation": name } }),
          (self) => replicas.size > 0 ? Effect.zipRight(FiberRef.set(wroteHere, true), self) : self
        )
      })

    // A read-only transaction opted in to replicas: one attempt on a replica,
    // then the writer's ordinary path, as `routed` does for a query.
    const routedTransaction = <C2, A>(
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      f: (tx: TransactionClient<C2>) => Promise<A>,
      txOptions: TransactionOptions
    ): Effect.Effect<A, DatabaseError> => {
      const onPrimary = { ...txOptions, replica: false }
      if (fiber.getFiberRef(wroteHere)) {
        routedTo("primary", "read_your_writes")
        return transaction(f, onPrimary)
      }
      const now = guard.clock.unsafeCurrentTimeMillis()
      const picked = topology.pick(now)
      if (typeof picked === "string") {
        routedTo("primary", picked)
        return transaction(f, onPrimary)
      }
      const operation = txOptions.operation ?? "$transaction"
      const config = merge(retryConfig, txOptions.retry)
      const deadlineMs = fiber.getFiberRef(RetryPolicy.currentDeadline) ?? now + config.requestBudgetMs
      const timeoutMs = RetryPolicy.attemptTimeout(config, deadlineMs, now)
      return onReplica(
        picked,
        operation,
        () =>
          picked.client.$transaction(f, prismaLimits(txOptions, timeoutMs)) as PromiseLike<A>,
        timeoutMs,
        deadlineMs,
        transaction(f, onPrimary)
      )
    }

    // With `target_session_attrs=read-write` the probe also asks whether the
    // writer still takes writes: a demoted primary answers `SELECT 1`.
    const ping = (timeoutMs = warmupSettings.healthTimeoutMs) =>
      Effect.suspend(() => {
        const started = performance.now()
        const probe = topology.writerMode
          ? topology.verify(primary.client, primary.node).pipe(
            Effect.tapError((error) =>
              Effect.sync(() => {
                if (error._tag === "ConnectionError") topology.discover(`the health probe: ${describe(error)}`)
              })
            )
          )
          : awaitWithTimeout(primary.client.$queryRaw`SELECT 1`, timeoutMs, "ping", 1)
        return Effect.map(probe, () => Math.round((performance.now() - started) * 100) / 100)
      }).pipe(Effect.withSpan("Database.ping"))

    yield* sampleStats
    yield* Metric.set(ready, 1)

    const service: DatabaseService<C> = {
      query,
      transaction,
      ping,
      probe: healthProbe(guard, ping, {
        timeoutMs: warmupSettings.healthTimeoutMs,
        quietMs: settings.circuitBreaker.resetTimeoutMs
      }),
      warmup: info,
      retryConfig,
      warmupConfig: warmupSettings,
      state: Ref.get(state),
      beginShutdown: Effect.zipRight(Ref.set(state, "shutting_down"), Metric.set(ready, 0)),
      poolStats: readStats,
      circuit: Effect.sync(() => {
        const now = guard.clock.unsafeCurrentTimeMillis()
        return { state: guard.breaker.state(now), retryAfterMs: Math.max(0, guard.breaker.retryAfterMs(now)) }
      }),
      retryBudgetTokens: Effect.sync(() => guard.budget.tokens()),
      queryPath: Effect.sync(() => guard.queryHealth.degraded(guard.clock.unsafeCurrentTimeMillis())),
      nodes: Effect.sync(() =>
        topology.active ? topology.nodes(guard.clock.unsafeCurrentTimeMillis(), primary.node) : undefined
      )
    }
    queriesIn.set(service, queryIn)
    if (!topology.active) queriesNow.set(service, queryNow)
    return service
  })

/**
 * Builds the service with `options` and the built-in defaults for every
 * setting not given (no environment is read): the warm-up, then the service.
 */
export const make = <C extends PrismaClientLike>(
  options: LayerOptions<C>
): Effect.Effect<DatabaseService<C>, WarmupError | RetryConfigError, Scope.Scope> =>
  makeWith(options, resolveSettings(options, defaults), options.name ?? defaultName)

/** `make`, with the settings not given read through `Config` (the `DB_*` variables, see `config`). */
export const makeConfig = <C extends PrismaClientLike>(
  options: LayerOptions<C>
): Effect.Effect<DatabaseService<C>, WarmupError | RetryConfigError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.flatMap(Effect.all([config, connectionConfig]), ([base, connection]) => {
    const withUrls: LayerOptions<C> = {
      ...options,
      url: options.url ?? Option.getOrUndefined(connection.url),
      replicaUrls: options.replicaUrls ?? Option.toArray(connection.replicaUrls)
    }
    if (withUrls.url === undefined) return Effect.fail(missingUrl())
    return makeWith(withUrls, resolveSettings(withUrls, base), options.name ?? defaultName)
  })

type QueryIn = <C, A>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
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
 * A `Database` tag bound to one client type, with its layers and accessors:
 *
 * ```ts
 * class Db extends Database.Tag("Db")<Db, PrismaClient>() {}
 * const DbLive = Db.layerConfig({ client: (pool) => new PrismaClient({ adapter: new PrismaPg({ ...pool, connectionString }) }) })
 * const order = Db.query((c) => c.purchaseOrder.findUnique({ where: { id } })) // Effect<…, DatabaseError, Db>
 * ```
 *
 * Two tags with different keys are two databases in one context; their
 * gauges are labelled `database` with `name` (default: the key), or with
 * the layer's `options.name`.
 */
export interface DatabaseTag<Self, Id extends string, C extends PrismaClientLike>
  extends Context.TagClass<Self, Id, DatabaseService<C>>
{
  /** The warm-up as a scoped layer, with the built-in defaults for settings not given. */
  readonly layer: (options: LayerOptions<C>) => Layer.Layer<Self, WarmupError | RetryConfigError>
  /** The warm-up as a scoped layer, with the settings not given read from the `DB_*` variables. */
  readonly layerConfig: (
    options: LayerOptions<C>
  ) => Layer.Layer<Self, WarmupError | RetryConfigError | ConfigError.ConfigError>
  readonly query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions) => Effect.Effect<A, DatabaseError, Self>
  readonly transaction: <A>(
    f: (tx: TransactionClient<C>) => Promise<A>,
    options?: TransactionOptions
  ) => Effect.Effect<A, DatabaseError, Self>
  /** `SELECT 1` on this database's client, after its warm-up: see `health`. */
  readonly health: Effect.Effect<HealthReport, HealthError, Self>
}

export const Tag = <const Id extends string>(id: Id, name: string = id) =>
<Self, C extends PrismaClientLike>(): DatabaseTag<Self, Id, C> => {
  const tag = Context.Tag(id)<Self, DatabaseService<C>>()
  const named = (options: LayerOptions<C>): LayerOptions<C> => options.name === undefined ? { ...options, name } : options
  return Object.assign(tag, {
    layer: (options: LayerOptions<C>) => Layer.scoped(tag, make(named(options))),
    layerConfig: (options: LayerOptions<C>) => Layer.scoped(tag, makeConfig(named(options))),
    query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions): Effect.Effect<A, DatabaseError, Self> =>
      Effect.withFiberRuntime((fiber) => {
        const db = Context.unsafeGet(fiber.currentContext, tag)
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
 */
export class Database extends Tag("@prisma-resilience/core/Database", defaultName)<Database, any>() {
  static readonly Tag = Tag
  static readonly forClient = <C extends PrismaClientLike>() => forClient<C>()
}

/** The warm-up as a scoped layer with the built-in defaults for settings not given. */
export const layer = <C extends PrismaClientLike>(
  options: LayerOptions<C>
): Layer.Layer<Database, WarmupError | RetryConfigError> => Layer.scoped(Database, make(options))

/** The warm-up as a scoped layer with the settings not given read from the `DB_*` variables. */
export const layerConfig = <C extends PrismaClientLike>(
  options: LayerOptions<C>
): Layer.Layer<Database, WarmupError | RetryConfigError | ConfigError.ConfigError> =>
  Layer.scoped(Database, makeConfig(options))

/** `query` through the default `Database`. */
export const query = <C, A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions): Effect.Effect<A, DatabaseError, Database> =>
  Database.query(f as (client: any) => PromiseLike<A>, options)

/** `transaction` through the default `Database`. */
export const transaction = <C, A>(f: (tx: TransactionClient<C>) => Promise<A>, options?: TransactionOptions) =>
  Database.transaction(f as (tx: any) => Promise<A>, options)

/**
 * Accessors of the default `Database` bound to one client type, so query
 * functions need no annotation: `const Db = Database.forClient<PrismaClient>()`,
 * then `Db.query((c) => c.purchaseOrder.findMany())`.
 */
export const forClient = <C extends PrismaClientLike>() => ({
  query: <A>(f: (client: C) => PromiseLike<A>, options?: QueryOptions) => query(f, options),
  transaction: <A>(f: (tx: TransactionClient<C>) => Promise<A>, options?: TransactionOptions) =>
    transaction<C, A>(f, options),
  layer: (options: LayerOptions<C>) => layer(options),
  layerConfig: (options: LayerOptions<C>) => layerConfig(options)
})

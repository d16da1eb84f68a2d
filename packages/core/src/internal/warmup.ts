/**
 * The warm-up: builds the user's client, connects and probes it with
 * `SELECT 1` (and, with a multi-host string, checks it reached the node
 * chosen for it), retried with a capped backoff and bounded by a timeout;
 * logs its start, every failed attempt and its duration, and sets
 * `db_warmup_duration_seconds` and `db_ready`.
 */
import { Clock, Duration, Effect, Exit, Metric, type MetricLabel, Ref, Schedule } from "effect"
import { classify } from "../Classify.js"
import type { LayerOptions, PoolSettings, PrismaClientLike, WarmupConfig, WarmupInfo } from "../DatabaseService.js"
import { type DatabaseError, TimeoutError, WarmupError } from "../Errors.js"
import { isStartupParameterRejected } from "../kernel/classify.js"
import { redact } from "../kernel/redact.js"
import * as Metrics from "../Metrics.js"
import { describe } from "./describe.js"
import type * as Topology from "./topology.js"

/** `$disconnect` within `timeoutMs`; a failure is only logged. */
export const disconnectQuietly = (client: PrismaClientLike, timeoutMs: number) =>
  Effect.tryPromise(() => client.$disconnect()).pipe(
    Effect.timeout(Duration.millis(timeoutMs)),
    Effect.catchAll((error) => Effect.logDebug(`disconnect failed: ${redact(String(error))}`))
  )

export const warmUp = <C extends PrismaClientLike>(
  options: LayerOptions<C>,
  pool: PoolSettings,
  config: WarmupConfig,
  labels: ReadonlyArray<MetricLabel.MetricLabel>,
  topology: Topology.Topology<C>
) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const attempts = yield* Ref.make(0)
    const lastError = yield* Ref.make<DatabaseError | undefined>(undefined)
    let poolUsed = pool
    // Exported from the start, so that "not ready" is a 0 and not a missing series.
    yield* Metric.set(Metric.taggedWithLabels(Metrics.ready, labels), 0)
    yield* Effect.logInfo(`Warmup started (timeout ${config.timeoutMs} ms)`)

    const attempt = Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(attempts, (k) => k + 1)
      const context = { operation: "warmup", attempt: n }
      // The writer of a multi-host string may change between attempts.
      const target = yield* topology.target("warmup", n).pipe(
        Effect.tapError((error) => Ref.set(lastError, error)),
        Effect.tapError((error) => Effect.logWarning(`Warmup attempt ${n} failed: ${describe(error)}`))
      )
      // A client whose connect failed may hold a broken pool: each attempt
      // builds a fresh one and disposes of it on failure.
      const client = yield* Effect.try({
        try: () => options.client(target.url === undefined ? poolUsed : { ...poolUsed, connectionString: target.url }),
        catch: (e) => classify(e, context)
      })
      const probe = Effect.tryPromise({ try: () => client.$connect(), catch: (e) => classify(e, context) }).pipe(
        Effect.zipRight(
          Effect.tryPromise({ try: () => client.$queryRaw`SELECT 1`, catch: (e) => classify(e, context) })
        ),
        Effect.zipRight(topology.verify(client, target.node)),
        Effect.timeoutFail({
          duration: Duration.millis(config.attemptTimeoutMs),
          onTimeout: () =>
            new TimeoutError({
              ...context,
              safety: "ambiguous",
              code: "WARMUP_ATTEMPT_TIMEOUT",
              message: `connect and probe took longer than ${config.attemptTimeoutMs} ms`,
              cause: undefined
            })
        })
      )
      return yield* probe.pipe(
        Effect.as({ client, node: target.node }),
        Effect.tapError((error) =>
          Effect.zipRight(
            Ref.set(lastError, error),
            Effect.logWarning(
              `Warmup attempt ${n} failed: ${error._tag}${error.code ? ` (${error.code})` : ""}: ${error.message}`
            )
          )
        ),
        // Interruption (the warm-up timeout) must not leak the client either.
        Effect.onExit((exit) => Exit.isFailure(exit) ? disconnectQuietly(client, config.shutdownTimeoutMs) : Effect.void)
      )
    })

    // A pooler that refuses the limits as startup parameters would fail every
    // connection for good: the service runs on without them, and says so.
    const withoutRefusedLimits = attempt.pipe(
      Effect.catchIf(
        (error) => poolUsed.statement_timeout !== undefined && isStartupParameterRejected(error.message),
        (error) =>
          Effect.gen(function*() {
            const {
              idle_in_transaction_session_timeout: _idle,
              lock_timeout: _lock,
              statement_timeout: _statement,
              ...rest
            } = poolUsed
            poolUsed = rest
            yield* Effect.logWarning(
              `The server refused the connection-level limits (${error.message}), as PgBouncer does with startup ` +
                "parameters it does not know: connecting without them, so only transactions get a server-side limit " +
                "(SET LOCAL). Set DB_SERVER_TIMEOUTS=false to connect this way from the start, and ALTER ROLE … SET " +
                "statement_timeout for a limit on single queries"
            )
            return yield* attempt
          })
      )
    )

    const backoff = Schedule.exponential(Duration.millis(config.backoffMs)).pipe(
      Schedule.union(Schedule.spaced(Duration.millis(config.backoffMaxMs))),
      Schedule.whileInput((error: DatabaseError) => error.safety !== "never")
    )

    const failure = (reason: string) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const cause = yield* Ref.get(lastError)
        const n = yield* Ref.get(attempts)
        return new WarmupError({
          attempts: n,
          elapsedMs: now - started,
          message: `Warmup failed after ${n} attempt(s) in ${now - started} ms: ${reason}` +
            (cause ? `; last error ${cause._tag}${cause.code ? ` (${cause.code})` : ""}: ${cause.message}` : ""),
          cause
        })
      })

    const { client, node } = yield* withoutRefusedLimits.pipe(
      Effect.retry(backoff),
      Effect.catchAll((error) => Effect.flatMap(failure(error.safety === "never" ? "not retryable" : "gave up"), Effect.fail)),
      Effect.timeoutFail({ duration: Duration.millis(config.timeoutMs), onTimeout: () => undefined }),
      Effect.catchAll((error) =>
        error === undefined ? Effect.flatMap(failure(`timed out after ${config.timeoutMs} ms`), Effect.fail) : Effect.fail(error)
      ),
      Effect.tapError((error) => Effect.logError(error.message))
    )
    const finished = yield* Clock.currentTimeMillis
    const info: WarmupInfo = { durationMs: finished - started, attempts: yield* Ref.get(attempts) }
    yield* Metric.set(Metric.taggedWithLabels(Metrics.warmupDuration, labels), info.durationMs / 1000)
    yield* Effect.logInfo(
      `Warmup complete in ${info.durationMs} ms (${info.attempts} attempt(s))${node === undefined ? "" : `; writer ${node}`}`
    )
    return { client, info, pool: poolUsed, node }
  }).pipe(Effect.withSpan("Database.warmup"))

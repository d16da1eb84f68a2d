/**
 * The warm-up: builds the user's client, connects and probes it with
 * `SELECT 1` (and, with a multi-host string, checks it reached the node
 * chosen for it), retried with a capped backoff and bounded by a timeout;
 * logs its start, every failed attempt and its duration, and sets
 * `db_warmup_duration_seconds` and `db_ready`.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import { classify } from "../Classify.js"
import type { LayerOptions, PoolSettings, PrismaClientLike, WarmupConfig, WarmupInfo } from "../DatabaseService.js"
import { type DatabaseError, TimeoutError, WarmupError } from "../Errors.js"
import { isStartupParameterRejected } from "@prisma-resilience/kernel/classify"
import { redact } from "@prisma-resilience/kernel/redact"
import * as Metrics from "./metrics.js"
import { describe } from "@prisma-resilience/kernel/describe"
import type * as Topology from "./topology.js"

/** `$disconnect` within `timeoutMs`; a failure is only logged. */
export const disconnectQuietly = (client: PrismaClientLike, timeoutMs: number) =>
  Effect.tryPromise(() => client.$disconnect()).pipe(
    Effect.timeout(Duration.millis(timeoutMs)),
    Effect.catch((error) => Effect.logDebug(`disconnect failed: ${redact(String(error))}`))
  )

/** What the attempts of one warm-up share. */
interface Run<C extends PrismaClientLike> {
  readonly options: LayerOptions<C>
  readonly config: WarmupConfig
  readonly topology: Topology.Topology<C>
  /** the pool settings the next attempt uses: without the server limits once a pooler refused them */
  pool: PoolSettings
  attempts: number
  lastError: DatabaseError | undefined
}

const failed = <C extends PrismaClientLike>(run: Run<C>, n: number) => (error: DatabaseError) =>
  Effect.andThen(
    Effect.sync(() => {
      run.lastError = error
    }),
    Effect.logWarning(`Warmup attempt ${n} failed: ${describe(error)}`)
  )

/** One attempt: the node to connect to, a fresh client, connect, `SELECT 1`, and the node check. */
const attemptOnce = <C extends PrismaClientLike>(run: Run<C>) =>
  Effect.gen(function*() {
    const n = ++run.attempts
    const context = { operation: "warmup", attempt: n }
    // The writer of a multi-host string may change between attempts.
    const target = yield* run.topology.target("warmup", n).pipe(Effect.tapError(failed(run, n)))
    // A client whose connect failed may hold a broken pool: each attempt
    // builds a fresh one and disposes of it on failure.
    const client = yield* Effect.try({
      try: () => run.options.client(target.url === undefined ? run.pool : { ...run.pool, connectionString: target.url }),
      catch: (e) => classify(e, context)
    })
    const timeoutMs = run.config.attemptTimeoutMs
    return yield* Effect.tryPromise({ try: () => client.$connect(), catch: (e) => classify(e, context) }).pipe(
      Effect.andThen(Effect.tryPromise({ try: () => client.$queryRaw`SELECT 1`, catch: (e) => classify(e, context) })),
      Effect.andThen(run.topology.verify(client, target.node)),
      Effect.timeoutOrElse({
        duration: Duration.millis(timeoutMs),
        orElse: () =>
          Effect.fail(
            new TimeoutError({
              ...context,
              safety: "ambiguous",
              code: "WARMUP_ATTEMPT_TIMEOUT",
              message: `connect and probe took longer than ${timeoutMs} ms`,
              cause: undefined
            })
          )
      }),
      Effect.as({ client, node: target.node }),
      Effect.tapError(failed(run, n)),
      // Interruption (the warm-up timeout) must not leak the client either.
      Effect.onExit((exit) => Exit.isFailure(exit) ? disconnectQuietly(client, run.config.shutdownTimeoutMs) : Effect.void)
    )
  })

/**
 * A pooler that refuses the limits as startup parameters would fail every
 * connection for good: the service runs on without them, and says so.
 */
const withoutRefusedLimits = <C extends PrismaClientLike>(run: Run<C>) =>
  attemptOnce(run).pipe(
    Effect.catchIf(
      (error) => run.pool.statement_timeout !== undefined && isStartupParameterRejected(error.message),
      (error) => {
        const { idle_in_transaction_session_timeout: _idle, lock_timeout: _lock, statement_timeout: _statement, ...rest } =
          run.pool
        run.pool = rest
        return Effect.andThen(
          Effect.logWarning(
            `The server refused the connection-level limits (${error.message}), as PgBouncer does with startup ` +
              "parameters it does not know: connecting without them, so only transactions get a server-side limit " +
              "(SET LOCAL). Set DB_SERVER_TIMEOUTS=false to connect this way from the start, and ALTER ROLE … SET " +
              "statement_timeout for a limit on single queries"
          ),
          attemptOnce(run)
        )
      }
    )
  )

const failure = <C extends PrismaClientLike>(run: Run<C>, started: number, reason: string) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const cause = run.lastError
    return new WarmupError({
      attempts: run.attempts,
      elapsedMs: now - started,
      message: `Warmup failed after ${run.attempts} attempt(s) in ${now - started} ms: ${reason}` +
        (cause ? `; last error ${describe(cause)}` : ""),
      cause
    })
  })

/** The warm-up of one `Database`: attempts with a capped backoff until one passes, within `config.timeoutMs`. */
export const warmUp = <C extends PrismaClientLike>(
  options: LayerOptions<C>,
  pool: PoolSettings,
  config: WarmupConfig,
  labels: Metrics.Labels,
  topology: Topology.Topology<C>
) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const run: Run<C> = { options, config, topology, pool, attempts: 0, lastError: undefined }
    // Exported from the start, so that "not ready" is a 0 and not a missing series.
    yield* Metric.update(Metric.withAttributes(Metrics.ready, labels), 0)
    yield* Effect.logInfo(`Warmup started (timeout ${config.timeoutMs} ms)`)
    const backoff = Schedule.min([
      Schedule.exponential(Duration.millis(config.backoffMs)),
      Schedule.spaced(Duration.millis(config.backoffMaxMs))
    ]).pipe(
      Schedule.setInputType<DatabaseError>(),
      Schedule.while(({ input }) => input.safety !== "never")
    )
    const fail = (reason: string) => Effect.flatMap(failure(run, started, reason), Effect.fail)
    const { client, node } = yield* withoutRefusedLimits(run).pipe(
      Effect.retry(backoff),
      Effect.catch((error) => fail(error.safety === "never" ? "not retryable" : "gave up")),
      Effect.timeoutOrElse({
        duration: Duration.millis(config.timeoutMs),
        orElse: () => fail(`timed out after ${config.timeoutMs} ms`)
      }),
      Effect.tapError((error) => Effect.logError(error.message))
    )
    const info: WarmupInfo = { durationMs: (yield* Clock.currentTimeMillis) - started, attempts: run.attempts }
    yield* Metric.update(Metric.withAttributes(Metrics.warmupDuration, labels), info.durationMs / 1000)
    yield* Effect.logInfo(
      `Warmup complete in ${info.durationMs} ms (${info.attempts} attempt(s))${node === undefined ? "" : `; writer ${node}`}`
    )
    return { client, info, pool: run.pool, node }
  }).pipe(Effect.withSpan("Database.warmup"))

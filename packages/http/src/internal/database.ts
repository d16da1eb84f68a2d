/**
 * Where `npm start` and `npm run db:migrate` find their database: at
 * `DATABASE_URL`, or else in an embedded PostgreSQL kept in `DATA_DIR`
 * (default `.data`) that lives as long as the scope. The embedded server is a
 * development convenience: its code is loaded only when `DATABASE_URL` is not
 * set, so a deployment never loads it.
 */
import { Clock, Config, Data, Duration, Effect, Option, Redacted, Schedule } from "effect"
import path from "node:path"

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{ readonly message: string }> {}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error))

export const embedded = Effect.gen(function*() {
  const dataDir = path.resolve(yield* Config.String("DATA_DIR").pipe(Config.withDefault(".data")))
  const started = yield* Clock.currentTimeMillis
  yield* Effect.logInfo(`DATABASE_URL is not set: starting the embedded PostgreSQL in ${dataDir}`)
  const { startCluster } = yield* Effect.tryPromise({
    try: () => import("@prisma-resilience/devdb"),
    catch: (error) =>
      new EmbeddedPostgresError({
        message: `DATABASE_URL is not set and the embedded PostgreSQL (a development dependency) is not installed: ${
          message(error)
        }`
      })
  })
  // devdb says where the data lives when it cannot keep it in `dataDir`.
  const notes: Array<string> = []
  const cluster = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startCluster({ dataDir, persistent: true, log: (line) => line.startsWith("devdb:") && notes.push(line) }),
      catch: (error) =>
        new EmbeddedPostgresError({ message: `could not start the embedded PostgreSQL: ${message(error)}` })
    }),
    (cluster) =>
      Effect.tryPromise(() => cluster.stop("fast")).pipe(
        Effect.andThen(Effect.logInfo("Embedded PostgreSQL stopped")),
        Effect.catch((error) => Effect.logError(`Embedded PostgreSQL did not stop cleanly: ${message(error)}`))
      )
  )
  yield* Effect.forEach(notes, (note) => Effect.logWarning(note), { discard: true })
  // The service is only as up as its database: a postmaster that died (OOM
  // killer, a stray kill) is started again on the same port and data, and the
  // layer's retries and breaker carry the requests across. Interrupted when
  // the scope closes, before the release above stops the server on purpose.
  yield* Effect.forkScoped(
    Effect.repeat(
      Effect.suspend(() =>
        cluster.running ? Effect.void : Effect.gen(function*() {
          yield* Effect.logWarning("Embedded PostgreSQL is not running; starting it again")
          const restarted = yield* Clock.currentTimeMillis
          yield* Effect.tryPromise(() => cluster.start()).pipe(
            Effect.andThen(
              Effect.flatMap(Clock.currentTimeMillis, (now) =>
                Effect.logInfo(`Embedded PostgreSQL listening again on ${cluster.host}:${cluster.port} (restarted in ${now - restarted} ms)`))
            ),
            Effect.catch((error) => Effect.logError(`Embedded PostgreSQL did not start again: ${message(error.cause)}`))
          )
        })
      ),
      Schedule.spaced(Duration.seconds(1))
    )
  )
  const took = (yield* Clock.currentTimeMillis) - started
  yield* Effect.logInfo(`Embedded PostgreSQL listening on ${cluster.host}:${cluster.port} (started in ${took} ms)`)
  return Redacted.make(cluster.url)
})

export const databaseUrl = Effect.flatMap(
  Config.option(Config.Redacted("DATABASE_URL")),
  Option.match({ onSome: Effect.succeed, onNone: () => embedded })
)

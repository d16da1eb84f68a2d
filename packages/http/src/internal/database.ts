/**
 * Where `npm start` and `npm run db:migrate` find their database: at
 * `DATABASE_URL`, or else in an embedded PostgreSQL kept in `DATA_DIR`
 * (default `.data`) that lives as long as the scope.
 */
import { startCluster } from "@prisma-resilience/devdb"
import { Clock, Config, Data, Effect, Option, Redacted } from "effect"
import path from "node:path"

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{ readonly message: string }> {}

export const embedded = Effect.gen(function*() {
  const dataDir = path.resolve(yield* Config.string("DATA_DIR").pipe(Config.withDefault(".data")))
  const started = yield* Clock.currentTimeMillis
  yield* Effect.logInfo(`DATABASE_URL is not set: starting the embedded PostgreSQL in ${dataDir}`)
  const cluster = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startCluster({ dataDir, persistent: true }),
      catch: (error) =>
        new EmbeddedPostgresError({
          message: `could not start the embedded PostgreSQL: ${error instanceof Error ? error.message : String(error)}`
        })
    }),
    (cluster) =>
      Effect.promise(() => cluster.stop("fast")).pipe(
        Effect.zipRight(Effect.logInfo("Embedded PostgreSQL stopped"))
      )
  )
  const took = (yield* Clock.currentTimeMillis) - started
  yield* Effect.logInfo(`Embedded PostgreSQL listening on ${cluster.host}:${cluster.port} (started in ${took} ms)`)
  return Redacted.make(cluster.url)
})

export const databaseUrl = Effect.flatMap(
  Config.option(Config.redacted("DATABASE_URL")),
  Option.match({ onSome: Effect.succeed, onNone: () => embedded })
)

/**
 * `npm start`: the service on PORT, against DATABASE_URL or an embedded
 * PostgreSQL in DATA_DIR. The server listens at once; pending migrations and
 * the warm-up run behind `/health` (503 `warming`). SIGTERM or SIGINT drains
 * and stops everything in reverse order, the embedded PostgreSQL last.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { Clock, Context, Effect, Layer } from "effect"
import { fileURLToPath } from "node:url"
import { databaseUrl } from "./internal/database.js"
import { teardown } from "./internal/teardown.js"
import * as Prometheus from "./Prometheus.js"
import * as Readiness from "./Readiness.js"
import * as Server from "./Server.js"

/**
 * The whole service as one Effect; `npm start` runs it with `NodeRuntime.runMain`.
 *
 * @since 0.1.0
 */
export const main = Effect.gen(function*() {
  const started = yield* Clock.currentTimeMillis
  const url = yield* databaseUrl
  const services = Layer.mergeAll(Readiness.layerUrl(url, { migrate: true }), Prometheus.layer)
  const context = yield* Layer.build(Layer.provideMerge(Server.layer, services))
  yield* Effect.forkScoped(
    Context.get(context, Readiness.Readiness).ready.pipe(
      Effect.flatMap((warmup) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.logInfo(`Ready ${now - started} ms after start (database warm-up ${warmup.durationMs} ms)`)
        )
      )
    )
  )
  return yield* Effect.never
}).pipe(Effect.scoped)

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Ctrl-C under `npm start` delivers SIGINT twice (the terminal signals the
  // whole process group, and npm forwards its own). runMain stops listening
  // after the first, and a second, unheard, would kill node mid-drain (exit
  // 130): while the ordered shutdown runs, repeats are only noted.
  let shutdownSignals = 0
  const repeat = (signal: NodeJS.Signals) => {
    if (shutdownSignals++ > 0) console.info(`${signal} again: already shutting down in order`)
  }
  process.on("SIGINT", repeat)
  process.on("SIGTERM", repeat)
  NodeRuntime.runMain(main, { teardown })
}

/**
 * The Node HTTP server. It listens at once (the database warms up behind
 * `Readiness`) and shuts down in order: health fails with `shutting_down`,
 * optionally for `SHUTDOWN_DELAY_MS` while load balancers notice, then the
 * connections the kernel has already queued are accepted (closing the
 * listener would reset them) and the listener closes; a connection already
 * accepted may still deliver its
 * request for `SHUTDOWN_IDLE_GRACE_MS`, and in-flight requests get up to
 * `SHUTDOWN_DRAIN_MS` to finish (all answered with `Connection: close`), then
 * the remaining connections are closed. The database is
 * disconnected after all of that, when `Readiness` is released.
 *
 * Effect 4's Node server has a graceful shutdown of its own (it waits up to
 * `gracefulShutdownTimeout` for its connections); the ordered drain below
 * runs before it, so by then nothing is left for it to wait for.
 *
 * @since 0.1.0
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Data, Duration, Effect, Layer } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { createServer } from "node:http"
import * as ApiLive from "./ApiLive.js"
import * as Drain from "./internal/drain.js"
import { Readiness } from "./Readiness.js"
import * as ServerConfig from "./ServerConfig.js"

/**
 * The server could not listen on HOST:PORT; `message` says where and why (EADDRINUSE, EADDRNOTAVAIL, EACCES).
 *
 * @since 0.1.0
 */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly host: string
  readonly port: number
  readonly cause: unknown
}> {
  override get message() {
    const cause = this.cause as { code?: unknown; message?: unknown } | undefined
    const code = typeof cause?.code === "string" ? `${cause.code}: ` : ""
    const reason = typeof cause?.message === "string" ? cause.message : String(this.cause)
    return `cannot listen on ${this.host}:${this.port} (HOST, PORT): ${code}${reason}`
  }
}

/**
 * The running server, as `HttpServer` (whose address tells the port when PORT is 0).
 *
 * @since 0.1.0
 */
export const layer = Layer.effect(
  HttpServer.HttpServer,
  Effect.gen(function*() {
    const config = yield* ServerConfig.config
    const readiness = yield* Readiness
    const server = createServer()
    const drain = Drain.track(server, { maxBodyBytes: config.maxBodyBytes })

    const platform = yield* Layer.build(NodeHttpServer.layer(() => server, { port: config.port, host: config.host })).pipe(
      Effect.mapError((error) => new ListenError({ host: config.host, port: config.port, cause: error.cause }))
    )
    // Effect 4's router logs every request unless told not to; the service
    // logs what matters (defects, database failures) itself.
    yield* Layer.build(
      HttpRouter.serve(ApiLive.layer, { disableLogger: true }).pipe(
        Layer.provide(ApiLive.requestSpans),
        Layer.provide(Layer.succeedContext(platform))
      )
    )

    // Added last, so it runs first: before the listener's own finalizer and
    // long before `Readiness` disconnects the database.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Effect.logInfo("Shutting down: health now fails with shutting_down")
        yield* readiness.beginShutdown
        if (config.shutdownDelayMs > 0) yield* Effect.sleep(Duration.millis(config.shutdownDelayMs))
        const started = yield* Clock.currentTimeMillis
        yield* Effect.logInfo(
          `No longer accepting connections; draining ${drain.inFlight()} in-flight request(s) on ${drain.connections()} connection(s) for up to ${config.drainTimeoutMs} ms`
        )
        const drained = yield* drain.drain(config.drainTimeoutMs, config.idleGraceMs)
        const took = (yield* Clock.currentTimeMillis) - started
        yield* drained
          ? Effect.logInfo(`Drained in ${took} ms`)
          : Effect.logWarning(`Drain timed out after ${took} ms with ${drain.inFlight()} request(s) in flight`)
        yield* drain.closeAll
        yield* Effect.logInfo("HTTP server closed")
      })
    )
    return Context.get(platform, HttpServer.HttpServer)
  })
)

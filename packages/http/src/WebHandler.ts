/**
 * The same app as a web handler (`Request → Promise<Response>`) for
 * serverless platforms. The database warms up on the first request, which
 * waits for it within its budget; later invocations of a warm instance reuse
 * the connection pool. Migrations are not applied here: run
 * `npm run db:migrate` as a deployment step.
 *
 * @since 0.1.0
 */
import { Config, Effect, Layer, type Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as ApiLive from "./ApiLive.js"
import * as Prometheus from "./Prometheus.js"
import * as Readiness from "./Readiness.js"

/** @since 0.1.0 */
export interface WebHandler {
  readonly handler: (request: Request) => Promise<Response>
  /** Drains nothing (the platform owns requests); disconnects the database. */
  readonly dispose: () => Promise<void>
}

/**
 * The database is `options.databaseUrl`, or else `DATABASE_URL`.
 *
 * @since 0.1.0
 */
export const make = (options?: { readonly databaseUrl?: Redacted.Redacted<string> | undefined }): WebHandler => {
  const readiness = options?.databaseUrl === undefined
    ? Layer.unwrap(Effect.map(Config.Redacted("DATABASE_URL"), (url) => Readiness.layerUrl(url)))
    : Readiness.layerUrl(options.databaseUrl)
  const { dispose, handler } = HttpRouter.toWebHandler(
    ApiLive.layer.pipe(
      Layer.provide([readiness, Prometheus.layer, HttpServer.layerServices, ApiLive.requestSpans])
    ),
    { disableLogger: true }
  )
  return { handler: (request) => handler(request), dispose }
}

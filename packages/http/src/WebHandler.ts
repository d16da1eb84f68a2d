/**
 * The same app as a web handler (`Request → Promise<Response>`) for
 * serverless platforms. The database warms up on the first request, which
 * waits for it within its budget; later invocations of a warm instance reuse
 * the connection pool. Migrations are not applied here: run
 * `npm run db:migrate` as a deployment step.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import { Config, Effect, Layer, type Redacted } from "effect"
import * as ApiLive from "./ApiLive.js"
import * as Prometheus from "./Prometheus.js"
import * as Readiness from "./Readiness.js"

export interface WebHandler {
  readonly handler: (request: Request) => Promise<Response>
  /** Drains nothing (the platform owns requests); disconnects the database. */
  readonly dispose: () => Promise<void>
}

/** The database is `options.databaseUrl`, or else `DATABASE_URL`. */
export const make = (options?: { readonly databaseUrl?: Redacted.Redacted<string> | undefined }): WebHandler => {
  const readiness = options?.databaseUrl === undefined
    ? Layer.unwrapEffect(Effect.map(Config.redacted("DATABASE_URL"), (url) => Readiness.layerUrl(url)))
    : Readiness.layerUrl(options.databaseUrl)
  const { dispose, handler } = HttpApiBuilder.toWebHandler(
    Layer.mergeAll(ApiLive.layer, HttpServer.layerContext).pipe(
      Layer.provide([readiness, Prometheus.layer])
    )
  )
  return { handler: (request) => handler(request), dispose }
}

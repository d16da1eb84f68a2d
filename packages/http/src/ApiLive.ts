/**
 * The handlers of `Api`. Purchase-order handlers reach the database only
 * through `Readiness.withDatabase`, which waits for warm-up within the
 * request budget; database failures become 503 (transient: retries spent,
 * budget spent or circuit open) or 500 (retrying cannot help), with the
 * details in the log only.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import {
  type Database,
  type DatabaseError,
  type HealthError,
  type HealthFailureReason,
  type HealthReport,
  isDatabaseError
} from "@prisma-resilience/core"
import { DateTime, Effect, Layer } from "effect"
import { Api, DatabaseUnavailable, type Health, healthContentType, InternalServerError } from "./Api.js"
import * as Docs from "./internal/docs.js"
import { RequireJsonLive } from "./internal/input.js"
import * as Middleware from "./internal/middleware.js"
import { Prometheus } from "./Prometheus.js"
import * as PurchaseOrders from "./PurchaseOrders.js"
import { Readiness } from "./Readiness.js"

const description = "prisma-resilience purchase-order service"

const passBody = (report: HealthReport, time: string): Health => ({
  status: "pass",
  description,
  checks: {
    "postgres:responseTime": [
      { componentType: "datastore", observedValue: report.latencyMs, observedUnit: "ms", status: "pass", time }
    ],
    "postgres:warmup": [{
      componentType: "datastore",
      observedValue: report.warmupMs,
      observedUnit: "ms",
      status: "pass",
      time,
      output: `${report.warmupAttempts} attempt(s)`
    }]
  }
})

// `/health` is public, and a failed check's message can name the host, port,
// user and database or quote the server's error: that detail is in the log
// line of the failed check ("Health check failed: …", written once per check
// by core or by Readiness), and the response says only this.
const publicOutput: Record<HealthFailureReason, string> = {
  warming: "database warm-up in progress",
  unreachable: "database unreachable",
  timeout: "database probe timed out",
  shutting_down: "shutting down",
  circuit_open: "circuit breaker open",
  degraded: "database queries failing or stalled"
}

const failBody = (error: HealthError, time: string): Health => ({
  status: "fail",
  reason: error.reason,
  description,
  output: publicOutput[error.reason],
  checks: {
    "postgres:responseTime": [{
      componentType: "datastore",
      ...(error.latencyMs === undefined ? {} : { observedValue: error.latencyMs, observedUnit: "ms" }),
      status: "fail",
      time,
      output: publicOutput[error.reason]
    }],
    "postgres:warmup": [{
      componentType: "datastore",
      ...(error.warmupMs === undefined ? {} : { observedValue: error.warmupMs, observedUnit: "ms" }),
      // warm-up has passed once it has a duration, whatever the probe says now
      status: error.warmupMs === undefined ? "fail" : "pass",
      time
    }]
  }
})

const healthResponse = (status: number, body: Health) =>
  HttpServerResponse.unsafeJson(body, {
    status,
    contentType: healthContentType,
    headers: { "cache-control": "no-store" }
  })

const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const readiness = yield* Readiness
    return handlers
      .handle("live", () => Effect.succeed({ status: "pass" as const }))
      .handle("health", () =>
        Effect.flatMap(DateTime.now, (now) =>
          readiness.check.pipe(
            Effect.matchEffect({
              onSuccess: (report) => Effect.succeed(healthResponse(200, passBody(report, DateTime.formatIso(now)))),
              onFailure: (error) =>
                Effect.as(
                  error.retryAfterMs === undefined ? Effect.void : Middleware.retryAfter(error.retryAfterMs),
                  healthResponse(503, failBody(error, DateTime.formatIso(now)))
                )
            })
          )))
  }))

const MetricsLive = HttpApiBuilder.group(Api, "metrics", (handlers) =>
  Effect.map(Prometheus, (prometheus) => handlers.handle("metrics", () => prometheus.scrape)))

// A QueryError is a bug or a schema problem: retrying cannot help. Every
// other database error (the circuit breaker's included) is transient.
const toHttpError = (error: DatabaseError): Effect.Effect<never, InternalServerError | DatabaseUnavailable> => {
  if (error._tag === "QueryError") {
    return Effect.zipRight(
      Effect.logError(
        `${error.operation} failed: ${error._tag}${error.code === undefined ? "" : ` (${error.code})`}: ${error.message}`
      ),
      Effect.fail(new InternalServerError({ message: "internal server error" }))
    )
  }
  const unavailable = Effect.fail(new DatabaseUnavailable({ message: "the database is unavailable; retry later" }))
  // An open circuit knows when its next probe is: that is when a retry can succeed.
  return error._tag === "CircuitOpenError"
    ? Effect.zipRight(Middleware.retryAfter(error.retryAfterMs), unavailable)
    : unavailable
}

const PurchaseOrdersLive = HttpApiBuilder.group(Api, "purchaseOrders", (handlers) =>
  Effect.gen(function*() {
    const readiness = yield* Readiness
    const run = <A, E>(self: Effect.Effect<A, E | DatabaseError, Database>) =>
      readiness.withDatabase(self).pipe(Effect.catchIf(isDatabaseError, toHttpError))
    return handlers
      .handle("findById", ({ path }) => run(PurchaseOrders.findById(path.id)))
      .handle("list", ({ urlParams }) => run(PurchaseOrders.list(urlParams)))
      .handle("create", ({ headers, payload }) => run(PurchaseOrders.create(payload, headers["idempotency-key"])))
  })).pipe(Layer.provide(RequireJsonLive))

/**
 * Everything the service serves: the API with its handlers, `/openapi.json`,
 * `/docs` and the API-level middleware. Needs `Readiness` and `Prometheus`.
 */
export const layer = Layer.mergeAll(
  Docs.layer,
  HttpApiBuilder.middlewareOpenApi(),
  Middleware.layer
).pipe(
  Layer.provideMerge(HttpApiBuilder.api(Api)),
  Layer.provide([HealthLive, MetricsLive, PurchaseOrdersLive])
)

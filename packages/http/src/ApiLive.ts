/**
 * The handlers of `Api`. Purchase-order handlers reach the database only
 * through `Readiness.database`, which waits for warm-up within the request
 * budget; database failures become 503 (transient: retries spent,
 * budget spent or circuit open) or 500 (retrying cannot help), with the
 * details in the log only.
 *
 * @since 0.1.0
 */
import {
  type DatabaseError,
  type HealthError,
  type HealthFailureReason,
  type HealthReport,
  type NodeHealth,
  isDatabaseError,
  RetryPolicy
} from "@prisma-resilience/core"
import { DateTime, Duration, Effect, Layer, Tracer } from "effect"
import { HttpMiddleware, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import {
  Api,
  DatabaseUnavailable,
  encodePurchaseOrder,
  encodePurchaseOrderPage,
  type Health,
  healthContentType,
  InternalServerError
} from "./Api.js"
import * as DecodeErrors from "./internal/decodeErrors.js"
import * as Docs from "./internal/docs.js"
import { RequireJsonLive } from "./internal/input.js"
import * as Middleware from "./internal/middleware.js"
import { Prometheus } from "./Prometheus.js"
import * as PurchaseOrders from "./PurchaseOrders.js"
import { Readiness, warmupWaitCode } from "./Readiness.js"
import * as ServerConfig from "./ServerConfig.js"

const description = "prisma-resilience purchase-order service"

// A replica that serves no reads because of its lag fails its check, and
// says why: over DB_REPLICA_MAX_LAG_MS, or a lag that cannot be told (which
// would otherwise read as a passing replica with no lag at all).
const lagOutput = (node: NodeHealth) =>
  node.lag === "over"
    ? { output: "replay lag over DB_REPLICA_MAX_LAG_MS: serves no reads" }
    : node.lag === "unknown"
    ? { output: "replay lag unknown: serves no reads" }
    : {}

// The node's address and role only: its probe's error stays in the log.
const nodeChecks = (nodes: ReadonlyArray<NodeHealth> | undefined, time: string) =>
  nodes === undefined ? {} : {
    "postgres:nodes": nodes.map((node) => ({
      componentType: "datastore",
      componentId: node.name,
      role: node.role,
      serves: node.serves,
      ...(node.lagMs === undefined ? {} : { observedValue: node.lagMs, observedUnit: "ms" }),
      status: node.role === "unreachable" || node.role === "unknown" ||
          (node.serves === "writer" && node.role !== "primary") || node.circuit === "open" ||
          (node.serves === "replica" && node.role === "replica" && node.lag !== "within")
        ? "fail" as const
        : "pass" as const,
      ...(node.serves === "replica" ? lagOutput(node) : {}),
      time
    }))
  }

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
    }],
    ...nodeChecks(report.nodes, time)
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
  degraded: "database queries failing or stalled",
  read_only: "the database node written to is read-only (failover in progress)"
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
    }],
    ...nodeChecks(error.nodes, time)
  }
})

const healthResponse = (status: number, body: Health, retryAfter?: string) =>
  HttpServerResponse.jsonUnsafe(body, {
    status,
    contentType: healthContentType,
    headers: retryAfter === undefined
      ? { "cache-control": "no-store" }
      : { "cache-control": "no-store", "retry-after": retryAfter }
  })

const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const readiness = yield* Readiness
    const { retryAfterSeconds } = yield* ServerConfig.config
    return handlers
      .handle("live", () => Effect.succeed({ status: "pass" as const }))
      .handle("health", () =>
        Effect.flatMap(DateTime.now, (now) =>
          readiness.check.pipe(
            Effect.matchEffect({
              onSuccess: (report) => Effect.succeed(healthResponse(200, passBody(report, DateTime.formatIso(now)))),
              onFailure: (error) =>
                Effect.succeed(
                  healthResponse(
                    503,
                    failBody(error, DateTime.formatIso(now)),
                    error.retryAfterMs === undefined
                      ? String(retryAfterSeconds)
                      : Middleware.retryAfterValue(error.retryAfterMs)
                  )
                )
            })
          )))
  }))

const MetricsLive = HttpApiBuilder.group(Api, "metrics", (handlers) =>
  Effect.map(Prometheus, (prometheus) => handlers.handle("metrics", () => prometheus.scrape)))

// A QueryError is a bug or a schema problem: retrying cannot help. Every
// other database error (the circuit breaker's included) is transient.
const toHttpError = (
  error: DatabaseError
): Effect.Effect<never, InternalServerError | DatabaseUnavailable, HttpServerRequest.HttpServerRequest> => {
  if (error._tag === "QueryError") {
    return Effect.andThen(
      Effect.logError(
        `${error.operation} failed: ${error._tag}${error.code === undefined ? "" : ` (${error.code})`}: ${error.message}`
      ),
      Effect.fail(new InternalServerError({ message: "internal server error" }))
    )
  }
  // Nothing was sent, and the message (fixed text and the wait) is fit for the client.
  if (error._tag === "ConnectionError" && error.code === warmupWaitCode) {
    return Effect.fail(new DatabaseUnavailable({ message: error.message }))
  }
  const unavailable = Effect.fail(new DatabaseUnavailable({ message: "the database is unavailable; retry later" }))
  // An open circuit knows when its next probe is: that is when a retry can succeed.
  return error._tag === "CircuitOpenError"
    ? Effect.andThen(Middleware.retryAfter(error.retryAfterMs), unavailable)
    : unavailable
}

// The success as the response the HttpApi would send for it (the status of
// its `addSuccess`), encoded without running the schema again: see
// `encodePurchaseOrder` in Api.ts.
const ok = <A, I>(status: number, encode: (value: A) => I) => (value: A) =>
  HttpServerResponse.jsonUnsafe(encode(value), { status })

const PurchaseOrdersLive = HttpApiBuilder.group(Api, "purchaseOrders", (handlers) =>
  Effect.gen(function*() {
    const readiness = yield* Readiness
    // Core gives an operation that finds no deadline the whole budget from
    // its start: for a read, one operation, that is the request's budget. A
    // create can be two (the insert, then the lookup of a replay): one budget.
    const withBudget = RetryPolicy.withBudget(Duration.millis(readiness.retryConfig.requestBudgetMs))
    // Effect 4 turns what a handler requires into a per-request requirement
    // (a group layer cannot satisfy it once), so the database is provided
    // here, one context operation per request: see `Readiness.database`.
    const database = readiness.database
    const run = <A, E>(self: Effect.Effect<A, E | DatabaseError, PurchaseOrders.PurchaseOrderDb>) =>
      Effect.catchIf(Effect.provideService(self, PurchaseOrders.PurchaseOrderDb, database), isDatabaseError, toHttpError)
    return handlers
      .handle("findById", ({ params }) => Effect.map(run(PurchaseOrders.findById(params.id)), ok(200, encodePurchaseOrder)))
      .handle("list", ({ query }) => Effect.map(run(PurchaseOrders.list(query)), ok(200, encodePurchaseOrderPage)))
      .handle("create", ({ headers, payload }) =>
        Effect.map(
          run(withBudget(PurchaseOrders.create(payload, headers["idempotency-key"]))),
          ok(201, encodePurchaseOrder)
        ))
  })).pipe(Layer.provide(RequireJsonLive))

// As with core's query spans: a span per request only when a tracer that
// exports it is installed. For a span the native tracer drops, the platform
// parses the trace headers and provides the span to the request: CPU per
// request for nothing. Provided where the server (or web handler) is built.
/** @since 0.1.0 */
export const requestSpans: Layer.Layer<never> = Layer.unwrap(
  Effect.map(Tracer.Tracer, (tracer) =>
    tracer === Tracer.nativeTracer
      ? Layer.succeed(HttpMiddleware.TracerDisabledWhen, () => true)
      : Layer.empty)
) as Layer.Layer<never>

/**
 * Everything the service serves, as routes of an `HttpRouter`: the API with
 * its handlers, `/openapi.json`, `/docs` and the router-wide middleware.
 * Needs `Readiness` and `Prometheus`.
 *
 * @since 0.1.0
 */
export const layer = Layer.mergeAll(
  HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }),
  Docs.layer,
  Middleware.layer
).pipe(
  // Every endpoint carries the API-level `DecodeErrors` middleware.
  Layer.provide(Layer.mergeAll(HealthLive, MetricsLive, PurchaseOrdersLive).pipe(Layer.provide(DecodeErrors.layer)))
)

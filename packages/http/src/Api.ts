/**
 * The HTTP API as data: schemas, errors and endpoints. The server, the web
 * handler, `/openapi.json` and `/docs` are all derived from this one value.
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"

// ------------------------------------------------------------------ schemas

export class PurchaseOrder extends Schema.Class<PurchaseOrder>("PurchaseOrder")({
  id: Schema.UUID,
  reference: Schema.String,
  totalCents: Schema.Int,
  note: Schema.NullOr(Schema.String),
  createdAt: Schema.Date
}) {}

/** A reference is free text without surrounding whitespace: "PO-2026-0001". */
export const Reference = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(100),
  Schema.pattern(/^\S(?:.*\S)?$/s, { message: () => "must not start or end with whitespace" })
)

/** The `total_cents` column is a PostgreSQL INTEGER. */
export const TotalCents = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(0, { message: () => "must be a non-negative integer number of cents" }),
  Schema.lessThanOrEqualTo(2_147_483_647, { message: () => "must be at most 2147483647 cents" })
)

// Unknown fields are rejected, in the body and in the query string alike: a
// misspelt optional field would otherwise vanish without a trace.
const strict = { parseOptions: { onExcessProperty: "error" } } as const

export const CreatePurchaseOrder = Schema.Struct({
  reference: Reference,
  totalCents: TotalCents,
  note: Schema.optional(Schema.String.pipe(Schema.maxLength(1000)))
}).annotations({ ...strict, identifier: "CreatePurchaseOrder" })
export type CreatePurchaseOrder = typeof CreatePurchaseOrder.Type

export const IdempotencyKey = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(255),
  Schema.pattern(/^[\x21-\x7e]+$/, { message: () => "must be 1-255 visible ASCII characters" })
)

export const ListParams = Schema.Struct({
  limit: Schema.optional(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100, { message: () => "must be an integer from 1 to 100" }))
  ),
  cursor: Schema.optional(Schema.UUID)
}).annotations(strict)

export class PurchaseOrderPage extends Schema.Class<PurchaseOrderPage>("PurchaseOrderPage")({
  items: Schema.Array(PurchaseOrder),
  /** pass as `cursor` for the next page; null on the last page */
  nextCursor: Schema.NullOr(Schema.UUID)
}) {}

export const HealthFailureReason = Schema.Literal(
  "warming",
  "unreachable",
  "timeout",
  "shutting_down",
  "circuit_open",
  "degraded"
)

/** One entry of `checks`, as in draft-inadarei-api-health-check. */
export const HealthCheck = Schema.Struct({
  componentType: Schema.String,
  observedValue: Schema.optional(Schema.Number),
  observedUnit: Schema.optional(Schema.String),
  status: Schema.Literal("pass", "fail"),
  time: Schema.String,
  output: Schema.optional(Schema.String)
})

/**
 * `application/health+json` (draft-inadarei-api-health-check). `reason` is an
 * extension field: the machine-readable cause of a `fail`.
 */
export const Health = Schema.Struct({
  status: Schema.Literal("pass", "fail"),
  reason: Schema.optional(HealthFailureReason),
  description: Schema.String,
  output: Schema.optional(Schema.String),
  checks: Schema.Struct({
    "postgres:responseTime": Schema.Array(HealthCheck),
    "postgres:warmup": Schema.Array(HealthCheck)
  })
}).annotations({ identifier: "Health" })
export type Health = typeof Health.Type

export const healthContentType = "application/health+json"

const HealthJson = Health.pipe(HttpApiSchema.withEncoding({ kind: "Json", contentType: healthContentType }))

export const Live = Schema.Struct({ status: Schema.Literal("pass") }).pipe(
  HttpApiSchema.withEncoding({ kind: "Json", contentType: healthContentType })
)

export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

// ------------------------------------------------------------------- errors

export class PurchaseOrderNotFound extends Schema.TaggedError<PurchaseOrderNotFound>()(
  "PurchaseOrderNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

export class DuplicateReference extends Schema.TaggedError<DuplicateReference>()(
  "DuplicateReference",
  { reference: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  { idempotencyKey: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 422 })
) {}

/** 503, sent with `Retry-After`: warm-up did not finish in time, the retries ran out, or the budget did. */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()(
  "DatabaseUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

/** 500 for failures that retrying cannot fix; the details are in the log, never in the response. */
export class InternalServerError extends Schema.TaggedError<InternalServerError>()(
  "InternalServerError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

// ---------------------------------------------------------------- endpoints

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/live")
      .addSuccess(Live)
      .annotate(OpenApi.Summary, "Liveness: 200 while the process runs, no database call")
  )
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(HealthJson)
      .addError(HealthJson, { status: 503 })
      .annotate(OpenApi.Summary, "Readiness: pass only after warm-up and a successful SELECT 1 on the query client")
  )
{}

export class MetricsApi extends HttpApiGroup.make("metrics")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: prometheusContentType }))
      .annotate(OpenApi.Summary, "Prometheus text exposition")
  )
{}

export class PurchaseOrdersApi extends HttpApiGroup.make("purchaseOrders")
  .add(
    HttpApiEndpoint.get("findById", "/purchase-orders/:id")
      .setPath(Schema.Struct({ id: Schema.UUID }))
      .addSuccess(PurchaseOrder)
      .addError(PurchaseOrderNotFound)
  )
  .add(
    HttpApiEndpoint.get("list", "/purchase-orders")
      .setUrlParams(ListParams)
      .addSuccess(PurchaseOrderPage)
      .annotate(OpenApi.Description, "Newest first. `limit` defaults to 20.")
  )
  .add(
    HttpApiEndpoint.post("create", "/purchase-orders")
      .setPayload(CreatePurchaseOrder)
      .setHeaders(Schema.Struct({ "idempotency-key": Schema.optional(IdempotencyKey) }))
      .addSuccess(PurchaseOrder, { status: 201 })
      .addError(DuplicateReference)
      .addError(IdempotencyKeyReused)
      .annotate(
        OpenApi.Description,
        "With an `Idempotency-Key` header, repeating the request returns the order created by the first one " +
          "(201 again) and never creates a second row; the same key with a different body is 422."
      )
  )
  .addError(DatabaseUnavailable)
  .addError(InternalServerError)
{}

export class Api extends HttpApi.make("prisma-resilience")
  .add(HealthApi)
  .add(MetricsApi)
  .add(PurchaseOrdersApi)
  .annotate(OpenApi.Title, "prisma-resilience purchase orders")
{}

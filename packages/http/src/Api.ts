/**
 * The HTTP API as data: schemas, errors and endpoints. The server, the web
 * handler, `/openapi.json` and `/docs` are all derived from this one value.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"

// ------------------------------------------------------------------ schemas

// Every message that a client's input can reach is fixed text: Effect's
// default messages quote the input ("Expected string, actual …"), which would
// send a 60 KB value back, twice, and format arbitrarily deep values.

// With the `u` flag a surrogate pair is one code point, so this only matches
// an unpaired half (ES2022 has no `String.prototype.isWellFormed` type).
const loneSurrogate = /\p{Surrogate}/u

/**
 * Text that PostgreSQL stores exactly as sent. It rejects NUL in text
 * (SQLSTATE 22021), and an unpaired surrogate has no UTF-8 encoding: it
 * would be stored as U+FFFD, so that different strings became one.
 */
const StoredText = Schema.String.annotations({ message: () => "must be a string" }).pipe(
  Schema.filter((s) => !s.includes("\u0000"), { message: () => "must not contain the NUL character (U+0000)" }),
  Schema.filter((s) => !loneSurrogate.test(s), {
    message: () => "must be well-formed Unicode: an unpaired surrogate (e.g. \\ud800) cannot be stored"
  })
)

export class PurchaseOrder extends Schema.Class<PurchaseOrder>("PurchaseOrder")({
  id: Schema.UUID,
  reference: Schema.String,
  totalCents: Schema.Int,
  note: Schema.NullOr(Schema.String),
  createdAt: Schema.Date
}) {}

/** A reference is free text without surrounding whitespace: "PO-2026-0001". */
export const Reference = StoredText.pipe(
  Schema.minLength(1, { message: () => "must not be empty" }),
  Schema.maxLength(100, { message: () => "must be at most 100 characters long" }),
  Schema.pattern(/^\S(?:.*\S)?$/s, { message: () => "must not start or end with whitespace" })
).annotations({
  description: "1-100 characters, not starting or ending with whitespace; no NUL (U+0000), no unpaired surrogate"
})

export const Note = StoredText.pipe(Schema.maxLength(1000, { message: () => "must be at most 1000 characters long" }))
  .annotations({ description: "at most 1000 characters; no NUL (U+0000), no unpaired surrogate" })

/** The `total_cents` column is a PostgreSQL INTEGER. */
export const TotalCents = Schema.Number.annotations({ message: () => "must be a number" }).pipe(
  Schema.int({ message: () => "must be an integer number of cents" }),
  Schema.greaterThanOrEqualTo(0, { message: () => "must be a non-negative integer number of cents" }),
  Schema.lessThanOrEqualTo(2_147_483_647, { message: () => "must be at most 2147483647 cents" })
)

// Unknown fields are rejected, in the body and in the query string alike: a
// misspelt optional field would otherwise vanish without a trace. Optional
// fields are `exact`: JSON, query strings and headers have no `undefined`, and
// without it each message about an optional field would add "Expected
// undefined, actual <the value>".
const strict = { parseOptions: { onExcessProperty: "error" } } as const

export const CreatePurchaseOrder = Schema.Struct({
  reference: Reference,
  totalCents: TotalCents,
  note: Schema.optionalWith(Note, { exact: true })
}).annotations({ ...strict, identifier: "CreatePurchaseOrder", message: () => "the request body must be a JSON object" })
export type CreatePurchaseOrder = typeof CreatePurchaseOrder.Type

const idempotencyKeyMessage = { message: () => "must be 1-255 visible ASCII characters" }
export const IdempotencyKey = Schema.String.pipe(
  Schema.minLength(1, idempotencyKeyMessage),
  Schema.maxLength(255, idempotencyKeyMessage),
  Schema.pattern(/^[\x21-\x7e]+$/, idempotencyKeyMessage)
)

/** A UUID from the path or the query string. */
export const Id = Schema.UUID.annotations({ message: () => ({ message: "must be a UUID", override: true }) })

export const ListParams = Schema.Struct({
  limit: Schema.optionalWith(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100)).annotations({
      // also for `limit=1&limit=2`, whose message would quote the values
      message: () => ({ message: "must be an integer from 1 to 100", override: true })
    }),
    { exact: true }
  ),
  cursor: Schema.optionalWith(Id, { exact: true })
}).annotations(strict)

export class PurchaseOrderPage extends Schema.Class<PurchaseOrderPage>("PurchaseOrderPage")({
  items: Schema.Array(PurchaseOrder),
  /** pass as `cursor` for the next page; null on the last page */
  nextCursor: Schema.NullOr(Schema.UUID)
}) {}

// Encoding a response through the schema validates again every field of a
// value the handler built from typed database rows (UUID pattern, integer,
// valid date) and merges the HttpApi annotations of the class again: about
// 25 µs of CPU per response. These write the encoded form directly; the
// compiler holds them to `Encoded`, and test/perf-encode.test.ts to what
// `Schema.encode` gives.

/** `Schema.encode(PurchaseOrder)` of an order that satisfies its schema. */
export const encodePurchaseOrder = (order: PurchaseOrder): typeof PurchaseOrder.Encoded => ({
  id: order.id,
  reference: order.reference,
  totalCents: order.totalCents,
  note: order.note,
  createdAt: order.createdAt.toISOString()
})

/** `Schema.encode(PurchaseOrderPage)` of a page that satisfies its schema. */
export const encodePurchaseOrderPage = (page: PurchaseOrderPage): typeof PurchaseOrderPage.Encoded => ({
  items: page.items.map(encodePurchaseOrder),
  nextCursor: page.nextCursor
})

export const HealthFailureReason = Schema.Literal(
  "warming",
  "unreachable",
  "timeout",
  "shutting_down",
  "circuit_open",
  "degraded",
  "read_only"
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

/** One node of a database with several: `componentId` is its host:port. */
export const NodeCheck = Schema.Struct({
  ...HealthCheck.fields,
  componentId: Schema.String,
  role: Schema.Literal("primary", "replica", "unreachable", "unknown"),
  serves: Schema.Literal("writer", "replica", "none")
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
    "postgres:warmup": Schema.Array(HealthCheck),
    /** with a multi-host DATABASE_URL or DATABASE_REPLICA_URLS: every node, its role and replay lag */
    "postgres:nodes": Schema.optional(Schema.Array(NodeCheck))
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

/**
 * 415: `POST /purchase-orders` takes `application/json` only, in UTF-8 (no
 * `charset` or `charset=utf-8`). A missing `Content-Type` is refused too, so
 * that a cross-origin form or `text/plain` post cannot create an order
 * without a CORS preflight.
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 415 })
) {}

/** 500 for failures that retrying cannot fix; the details are in the log, never in the response. */
export class InternalServerError extends Schema.TaggedError<InternalServerError>()(
  "InternalServerError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

// --------------------------------------------------------------- middleware

/** Checks an endpoint's `Content-Type` before its payload is read. */
export class RequireJson extends HttpApiMiddleware.Tag<RequireJson>()("RequireJson", {
  failure: UnsupportedMediaType
}) {}

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
      .setPath(Schema.Struct({ id: Id }))
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
      .middleware(RequireJson)
      .setHeaders(Schema.Struct({ "idempotency-key": Schema.optionalWith(IdempotencyKey, { exact: true }) }))
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

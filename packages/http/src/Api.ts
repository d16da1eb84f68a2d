/**
 * The HTTP API as data: schemas, errors and endpoints. The server, the web
 * handler, `/openapi.json` and `/docs` are all derived from this one value.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"

// ------------------------------------------------------------------ schemas

// Every message that a client's input can reach is fixed text: Effect's
// default messages can quote the input, which would send a 60 KB value back
// and format arbitrarily deep values.

// With the `u` flag a surrogate pair is one code point, so this only matches
// an unpaired half (ES2022 has no `String.prototype.isWellFormed` type).
const loneSurrogate = /\p{Surrogate}/u

const uuidMessage = "must be a UUID"

/**
 * Text that PostgreSQL stores exactly as sent. It rejects NUL in text
 * (SQLSTATE 22021), and an unpaired surrogate has no UTF-8 encoding: it
 * would be stored as U+FFFD, so that different strings became one.
 */
const StoredText = Schema.String.annotate({ message: "must be a string" }).check(
  Schema.makeFilter((s: string) => !s.includes("\u0000"), { message: "must not contain the NUL character (U+0000)" }),
  Schema.makeFilter((s: string) => !loneSurrogate.test(s), {
    message: "must be well-formed Unicode: an unpaired surrogate (e.g. \\ud800) cannot be stored"
  })
)

/** A UUID as a string. @since 0.1.0 */
export const Uuid = Schema.String.annotate({ message: uuidMessage }).check(Schema.isUUID(undefined, { message: uuidMessage }))

/** @since 0.1.0 */
export class PurchaseOrder extends Schema.Class<PurchaseOrder>("PurchaseOrder")({
  id: Uuid,
  reference: Schema.String,
  totalCents: Schema.Int,
  note: Schema.NullOr(Schema.String),
  createdAt: Schema.Date
}) {}

/** A reference is free text without surrounding whitespace: "PO-2026-0001". @since 0.1.0 */
export const Reference = StoredText.check(
  Schema.isMinLength(1, { message: "must not be empty" }),
  Schema.isMaxLength(100, { message: "must be at most 100 characters long" }),
  Schema.isPattern(/^\S(?:.*\S)?$/s, { message: "must not start or end with whitespace" })
).annotate({
  description: "1-100 characters, not starting or ending with whitespace; no NUL (U+0000), no unpaired surrogate"
})

/** @since 0.1.0 */
export const Note = StoredText.check(Schema.isMaxLength(1000, { message: "must be at most 1000 characters long" }))
  .annotate({ description: "at most 1000 characters; no NUL (U+0000), no unpaired surrogate" })

/** The `total_cents` column is a PostgreSQL INTEGER. @since 0.1.0 */
export const TotalCents = Schema.Number.annotate({ message: "must be a number" }).check(
  Schema.isInt({ message: "must be an integer number of cents" }),
  Schema.isGreaterThanOrEqualTo(0, { message: "must be a non-negative integer number of cents" }),
  Schema.isLessThanOrEqualTo(2_147_483_647, { message: "must be at most 2147483647 cents" })
)

// Unknown fields are rejected, in the body and in the query string alike: a
// misspelt optional field would otherwise vanish without a trace. Effect 4
// takes that as the parse options of the endpoint's payload and query slots
// (see the endpoints); `messageUnexpectedKey` keeps the message fixed.
const unexpectedKey = { messageUnexpectedKey: "unknown field" } as const

/** @since 0.1.0 */
export const CreatePurchaseOrder = Schema.Struct({
  reference: Reference,
  totalCents: TotalCents,
  note: Schema.optionalKey(Note)
}).annotate({ ...unexpectedKey, identifier: "CreatePurchaseOrder", message: "the request body must be a JSON object" })
/** @since 0.1.0 */
export type CreatePurchaseOrder = typeof CreatePurchaseOrder.Type

const idempotencyKeyMessage = { message: "must be 1-255 visible ASCII characters" }
/** @since 0.1.0 */
export const IdempotencyKey = Schema.String.annotate(idempotencyKeyMessage).check(
  Schema.isMinLength(1, idempotencyKeyMessage),
  Schema.isMaxLength(255, idempotencyKeyMessage),
  Schema.isPattern(/^[\x21-\x7e]+$/, idempotencyKeyMessage)
)

/** A UUID from the path or the query string. @since 0.1.0 */
export const Id = Uuid

const limitMessage = "must be an integer from 1 to 100"

/** @since 0.1.0 */
export const ListParams = Schema.Struct({
  // also for `limit=1&limit=2` (an array), whose message would quote the values
  limit: Schema.optionalKey(
    Schema.Int.annotate({ message: limitMessage }).check(
      Schema.isBetween({ minimum: 1, maximum: 100 }, { message: limitMessage })
    )
  ),
  cursor: Schema.optionalKey(Id)
}).annotate(unexpectedKey)

/** @since 0.1.0 */
export class PurchaseOrderPage extends Schema.Class<PurchaseOrderPage>("PurchaseOrderPage")({
  items: Schema.Array(PurchaseOrder),
  /** pass as `cursor` for the next page; null on the last page */
  nextCursor: Schema.NullOr(Uuid)
}) {}

// Encoding a response through the schema validates again every field of a
// value the handler built from typed database rows (UUID pattern, integer,
// valid date): CPU per response for nothing. These write the encoded form
// directly; test/perf-encode.test.ts holds them to what `Schema.encode` gives.

/** The JSON form of an order. @since 0.1.0 */
export interface PurchaseOrderJson {
  readonly id: string
  readonly reference: string
  readonly totalCents: number
  readonly note: string | null
  readonly createdAt: string
}

/** `Schema.encode(PurchaseOrder)` (JSON) of an order that satisfies its schema. @since 0.1.0 */
export const encodePurchaseOrder = (order: PurchaseOrder): PurchaseOrderJson => ({
  id: order.id,
  reference: order.reference,
  totalCents: order.totalCents,
  note: order.note,
  createdAt: order.createdAt.toISOString()
})

/** `Schema.encode(PurchaseOrderPage)` (JSON) of a page that satisfies its schema. @since 0.1.0 */
export const encodePurchaseOrderPage = (page: PurchaseOrderPage): {
  readonly items: ReadonlyArray<PurchaseOrderJson>
  readonly nextCursor: string | null
} => ({
  items: page.items.map(encodePurchaseOrder),
  nextCursor: page.nextCursor
})

/** @since 0.1.0 */
export const HealthFailureReason = Schema.Literals([
  "warming",
  "unreachable",
  "timeout",
  "shutting_down",
  "circuit_open",
  "degraded",
  "read_only"
])

/** One entry of `checks`, as in draft-inadarei-api-health-check. @since 0.1.0 */
export const HealthCheck = Schema.Struct({
  componentType: Schema.String,
  observedValue: Schema.optional(Schema.Number),
  observedUnit: Schema.optional(Schema.String),
  status: Schema.Literals(["pass", "fail"]),
  time: Schema.String,
  output: Schema.optional(Schema.String)
})

/** One node of a database with several: `componentId` is its host:port. @since 0.1.0 */
export const NodeCheck = Schema.Struct({
  ...HealthCheck.fields,
  componentId: Schema.String,
  role: Schema.Literals(["primary", "replica", "unreachable", "unknown"]),
  serves: Schema.Literals(["writer", "replica", "none"])
})

/**
 * `application/health+json` (draft-inadarei-api-health-check). `reason` is an
 * extension field: the machine-readable cause of a `fail`.
 *
 * @since 0.1.0
 */
export const Health = Schema.Struct({
  status: Schema.Literals(["pass", "fail"]),
  reason: Schema.optional(HealthFailureReason),
  description: Schema.String,
  output: Schema.optional(Schema.String),
  checks: Schema.Struct({
    "postgres:responseTime": Schema.Array(HealthCheck),
    "postgres:warmup": Schema.Array(HealthCheck),
    /** with a multi-host DATABASE_URL or DATABASE_REPLICA_URLS: every node, its role and replay lag */
    "postgres:nodes": Schema.optional(Schema.Array(NodeCheck))
  })
}).annotate({ identifier: "Health" })
/** @since 0.1.0 */
export type Health = typeof Health.Type

/** @since 0.1.0 */
export const healthContentType = "application/health+json"

const HealthJson = Health.pipe(HttpApiSchema.asJson({ contentType: healthContentType }))

/** @since 0.1.0 */
export const Live = Schema.Struct({ status: Schema.Literal("pass") }).pipe(
  HttpApiSchema.asJson({ contentType: healthContentType })
)

/** @since 0.1.0 */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

// ------------------------------------------------------------------- errors

/** @since 0.1.0 */
export class PurchaseOrderNotFound extends Schema.TaggedError<PurchaseOrderNotFound>()(
  "PurchaseOrderNotFound",
  { id: Schema.String, message: Schema.String },
  { httpApiStatus: 404 }
) {}

/** @since 0.1.0 */
export class DuplicateReference extends Schema.TaggedError<DuplicateReference>()(
  "DuplicateReference",
  { reference: Schema.String, message: Schema.String },
  { httpApiStatus: 409 }
) {}

/** @since 0.1.0 */
export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  { idempotencyKey: Schema.String, message: Schema.String },
  { httpApiStatus: 422 }
) {}

/**
 * 503, sent with `Retry-After`: warm-up did not finish in time, the retries ran out, or the budget did.
 *
 * @since 0.1.0
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()(
  "DatabaseUnavailable",
  { message: Schema.String },
  { httpApiStatus: 503 }
) {}

/**
 * 415: `POST /purchase-orders` takes `application/json` only, in UTF-8 (no
 * `charset` or `charset=utf-8`). A missing `Content-Type` is refused too, so
 * that a cross-origin form or `text/plain` post cannot create an order
 * without a CORS preflight.
 *
 * @since 0.1.0
 */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { message: Schema.String },
  { httpApiStatus: 415 }
) {}

/**
 * 500 for failures that retrying cannot fix; the details are in the log, never in the response.
 *
 * @since 0.1.0
 */
export class InternalServerError extends Schema.TaggedError<InternalServerError>()(
  "InternalServerError",
  { message: Schema.String },
  { httpApiStatus: 500 }
) {}

/** One problem with the input: `path` names the field; `message` is fixed text. @since 0.1.0 */
export const DecodeIssue = Schema.Struct({
  _tag: Schema.String,
  path: Schema.Array(Schema.Union([Schema.String, Schema.Number])),
  message: Schema.String
})

/**
 * 400 for input that does not decode. Effect 4 answers these with an empty
 * body; the service keeps the JSON body of Effect 3's `HttpApiDecodeError`
 * (`DecodeErrors` makes it), so that clients handle one kind of 400.
 *
 * @since 0.1.0
 */
export class HttpApiDecodeError extends Schema.TaggedError<HttpApiDecodeError>()(
  "HttpApiDecodeError",
  { issues: Schema.Array(DecodeIssue), message: Schema.String },
  { httpApiStatus: 400 }
) {}

// --------------------------------------------------------------- middleware

/** Checks an endpoint's `Content-Type` before its payload is read. @since 0.1.0 */
export class RequireJson extends HttpApiMiddleware.Service<RequireJson>()("RequireJson", {
  error: UnsupportedMediaType
}) {}

/** Turns the HttpApi's schema errors into `HttpApiDecodeError` bodies (internal/decodeErrors.ts). @since 0.1.0 */
export class DecodeErrors extends HttpApiMiddleware.Service<DecodeErrors>()("DecodeErrors", {
  error: HttpApiDecodeError
}) {}

// ---------------------------------------------------------------- endpoints

const summary = (text: string) => OpenApi.annotations({ summary: text })
const description = (text: string) => OpenApi.annotations({ description: text })

// Errors are listed per endpoint in Effect 4 (groups have no `addError`).
const databaseErrors = [DatabaseUnavailable, InternalServerError] as const

/** @since 0.1.0 */
export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/live", { success: Live })
      .annotateMerge(summary("Liveness: 200 while the process runs, no database call"))
  )
  .add(
    HttpApiEndpoint.get("health", "/health", {
      success: HealthJson,
      error: HealthJson.pipe(HttpApiSchema.status(503))
    }).annotateMerge(summary("Readiness: pass only after warm-up and a successful SELECT 1 on the query client"))
  )
{}

/** @since 0.1.0 */
export class MetricsApi extends HttpApiGroup.make("metrics")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: prometheusContentType }))
    }).annotateMerge(summary("Prometheus text exposition"))
  )
{}

/** @since 0.1.0 */
export class PurchaseOrdersApi extends HttpApiGroup.make("purchaseOrders")
  .add(
    HttpApiEndpoint.get("findById", "/purchase-orders/:id", {
      params: { id: Id },
      success: PurchaseOrder,
      error: [PurchaseOrderNotFound, ...databaseErrors]
    })
  )
  .add(
    HttpApiEndpoint.get("list", "/purchase-orders", {
      query: ListParams,
      success: PurchaseOrderPage,
      error: databaseErrors
    }).annotateMerge(description("Newest first. `limit` defaults to 20."))
  )
  .add(
    HttpApiEndpoint.post("create", "/purchase-orders", {
      payload: CreatePurchaseOrder,
      headers: { "idempotency-key": Schema.optionalKey(IdempotencyKey) },
      success: PurchaseOrder.pipe(HttpApiSchema.status(201)),
      error: [DuplicateReference, IdempotencyKeyReused, ...databaseErrors]
    })
      .middleware(RequireJson)
      .annotateMerge(description(
        "With an `Idempotency-Key` header, repeating the request returns the order created by the first one " +
          "(201 again) and never creates a second row; the same key with a different body is 422."
      ))
  )
{}

/** @since 0.1.0 */
export class Api extends HttpApi.make("prisma-resilience")
  .add(HealthApi)
  .add(MetricsApi)
  .add(PurchaseOrdersApi)
  .middleware(DecodeErrors)
  // Unknown body fields and query parameters are refused, not dropped.
  .annotate(HttpApi.PayloadParseOptions, { onExcessProperty: "error" })
  .annotate(HttpApi.QueryParseOptions, { onExcessProperty: "error" })
  .annotateMerge(OpenApi.annotations({ title: "prisma-resilience purchase orders" }))
{}

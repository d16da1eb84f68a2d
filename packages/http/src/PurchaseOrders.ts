/**
 * The purchase-order repository. Every query goes through core's `Database`,
 * so each one has the attempt timeout, the classification and the one retry
 * policy; these functions only say what each statement is and how safe it is
 * to run again.
 */
import { Database, type DatabaseError } from "@prisma-resilience/core"
import type { PrismaClient } from "./db/index.js"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import {
  type CreatePurchaseOrder,
  DuplicateReference,
  IdempotencyKeyReused,
  PurchaseOrder,
  PurchaseOrderNotFound,
  PurchaseOrderPage
} from "./Api.js"

/**
 * The service's database, bound to its Prisma client so that no query
 * function needs an annotation. The handlers' layer provides it with the
 * warmed-up `Database` of `Readiness`.
 *
 * @since 0.1.0
 */
export class PurchaseOrderDb extends Database.Tag("PurchaseOrderDb")<PurchaseOrderDb, PrismaClient>() {}

const Db = PurchaseOrderDb

// The idempotency columns stay in the database. Rows are built into the
// response classes without validation (`new PurchaseOrder(row, disableChecks)`): the
// `select` and the generated types already guarantee their shape, and the
// check cost about 30 µs per request.
const disableChecks = { disableChecks: true } as const

const columns = { id: true, reference: true, totalCents: true, note: true, createdAt: true } as const

/** @since 0.1.0 */
export const defaultPageSize = 20

/** @since 0.1.0 */
export const findById = (id: string): Effect.Effect<PurchaseOrder, PurchaseOrderNotFound | DatabaseError, PurchaseOrderDb> =>
  Db.query((c) => c.purchaseOrder.findUnique({ where: { id }, select: columns })).pipe(
    Effect.flatMap((row) =>
      row === null
        ? Effect.fail(new PurchaseOrderNotFound({ id, message: `no purchase order with id ${id}` }))
        : Effect.succeed(new PurchaseOrder(row, disableChecks))
    )
  )

/**
 * Newest first; the cursor is the id of the last order of the previous page.
 * Served by a replica when DATABASE_REPLICA_URLS names one that is within
 * DB_REPLICA_MAX_LAG_MS: a page may miss the newest orders by that much. A
 * single order (`findById`) is always read from the writer, so that a client
 * finds what it just created.
 *
 * @since 0.1.0
 */
export const list = (options: {
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}): Effect.Effect<PurchaseOrderPage, DatabaseError, PurchaseOrderDb> => {
  const limit = options.limit ?? defaultPageSize
  return Db.query((c) =>
    c.purchaseOrder.findMany({
      select: columns,
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      // one more than asked tells whether there is a next page
      take: limit + 1,
      ...(options.cursor === undefined ? {} : { cursor: { id: options.cursor }, skip: 1 })
    }), { replica: true }).pipe(
    Effect.map((rows) => {
      const items = rows.slice(0, limit).map((row) => new PurchaseOrder(row, disableChecks))
      return new PurchaseOrderPage({ items, nextCursor: rows.length > limit ? items[items.length - 1]!.id : null }, disableChecks)
    })
  )
}

/**
 * What identifies a request body for `Idempotency-Key`: the decoded fields, in a fixed order.
 *
 * @since 0.1.0
 */
export const requestHash = (input: CreatePurchaseOrder): string =>
  createHash("sha256").update(JSON.stringify([input.reference, input.totalCents, input.note ?? null])).digest("hex")

const isUniqueViolation = (error: DatabaseError) => error._tag === "QueryError" && error.code === "P2002"

// The name the insert had as a single query, kept for logs, metrics and spans.
const operation = "purchaseOrder.create"

/**
 * Creates an order. The insert runs as a transaction so that a connection
 * that dies during COMMIT has an answer: core asks `txid_status`, and an order
 * that committed is returned (201) as the insert returned it, one that did not
 * is inserted again. Only an outcome the server cannot tell stays a 503.
 *
 * With an idempotency key the insert is guarded by the unique
 * `idempotency_key` column: running it again can never create a second row,
 * so it is declared idempotent and retried even when the outcome is unknown.
 * A unique violation then means the key, or the reference, is taken: the row
 * holding the key decides between a replay, 422 and 409.
 *
 * @since 0.1.0
 */
export const create = (
  input: CreatePurchaseOrder,
  idempotencyKey?: string | undefined
): Effect.Effect<PurchaseOrder, DuplicateReference | IdempotencyKeyReused | DatabaseError, PurchaseOrderDb> => {
  const data = { reference: input.reference, totalCents: input.totalCents, note: input.note ?? null }
  const duplicate = new DuplicateReference({
    reference: input.reference,
    message: `a purchase order with reference ${JSON.stringify(input.reference)} already exists`
  })
  if (idempotencyKey === undefined) {
    return Db.transaction((tx) => tx.purchaseOrder.create({ data, select: columns }), { operation }).pipe(
      Effect.map((row) => new PurchaseOrder(row, disableChecks)),
      Effect.catchIf(isUniqueViolation, () => Effect.fail(duplicate))
    )
  }
  const hash = requestHash(input)
  const replay = Db.query((c) =>
    c.purchaseOrder.findUnique({ where: { idempotencyKey }, select: { ...columns, requestHash: true } })
  ).pipe(
    Effect.flatMap((row): Effect.Effect<PurchaseOrder, DuplicateReference | IdempotencyKeyReused> => {
      if (row === null) return Effect.fail(duplicate)
      if (row.requestHash !== hash) {
        return Effect.fail(
          new IdempotencyKeyReused({
            idempotencyKey,
            message: "this Idempotency-Key was used with a different request body"
          })
        )
      }
      const { requestHash: _, ...order } = row
      return Effect.succeed(new PurchaseOrder(order, disableChecks))
    })
  )
  return Db.transaction(
    (tx) => tx.purchaseOrder.create({ data: { ...data, idempotencyKey, requestHash: hash }, select: columns }),
    { operation, idempotent: true }
  ).pipe(
    Effect.map((row) => new PurchaseOrder(row, disableChecks)),
    Effect.catchIf(isUniqueViolation, () => replay)
  )
}

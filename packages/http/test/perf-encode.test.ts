// The purchase-order handlers answer with `encodePurchaseOrder` and
// `encodePurchaseOrderPage` instead of encoding through the schema: for every
// value the schema accepts they must give what the schema's JSON encoding
// gives, and what they give must decode back to the same value.
// Effect 4's property checks (`Arbitrary`, built from the schemas) replace
// Effect 3's `Arbitrary.make` + fast-check; the JSON codec
// (`Schema.toCodecJson`) is what the HttpApi sends, Effect 4's
// `Schema.encode` of a class alone keeps its `Date` a `Date`.
import { Arbitrary, Effect, Schema } from "effect"
import { isDeepStrictEqual } from "node:util"
import { describe, expect, it } from "vitest"
import { encodePurchaseOrder, encodePurchaseOrderPage, PurchaseOrder, PurchaseOrderPage, Uuid } from "../src/Api.js"

// Effect 4's integer arbitrary also draws -0, which JSON writes as 0 (for
// any encoder, the schema's included): no JSON round trip keeps it, and a
// PostgreSQL INTEGER, where orders come from, has no -0.
const orders = Arbitrary.schema(PurchaseOrder).pipe(Arbitrary.filter((order) => !Object.is(order.totalCents, -0)))
const pages = Arbitrary.all([Arbitrary.array(orders, { maxLength: 5 }), Arbitrary.schema(Schema.NullOr(Uuid))]).pipe(
  Arbitrary.map(([items, nextCursor]) => new PurchaseOrderPage({ items, nextCursor }))
)

/** The handler's encoding equals the schema's and decodes back to `value`. */
const roundTrips = <S extends typeof PurchaseOrder | typeof PurchaseOrderPage>(
  schema: S,
  encode: (value: S["Type"]) => unknown
) => {
  const json = Schema.toCodecJson(schema)
  const encodeJson = Schema.encodeSync(json)
  const decodeJson = Schema.decodeUnknownSync(json)
  return (value: S["Type"]) => {
    const encoded = encode(value)
    return JSON.stringify(encoded) === JSON.stringify(encodeJson(value)) &&
      isDeepStrictEqual(decodeJson(JSON.parse(JSON.stringify(encoded))), value)
  }
}

describe("encoding the purchase-order responses without the schema", () => {
  it("gives what Schema.encode gives, and decodes back, for every order", async () => {
    const result = await Effect.runPromise(
      Arbitrary.checkEffect(orders, roundTrips(PurchaseOrder, encodePurchaseOrder), { runs: 500 })
    )
    expect(Arbitrary.formatCheckFailure(result)).toBeUndefined()
  })

  it("gives what Schema.encode gives, and decodes back, for every page", async () => {
    const result = await Effect.runPromise(
      Arbitrary.checkEffect(pages, roundTrips(PurchaseOrderPage, encodePurchaseOrderPage), { runs: 200 })
    )
    expect(Arbitrary.formatCheckFailure(result)).toBeUndefined()
  })
})

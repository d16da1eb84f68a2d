// The purchase-order handlers answer with `encodePurchaseOrder` and
// `encodePurchaseOrderPage` instead of encoding through the schema: for every
// value the schema accepts they must give what `Schema.encode` gives, and
// what they give must decode back to the same value.
// effect's own fast-check, whose arbitraries `Arbitrary.make` builds
import { Arbitrary, FastCheck as fc, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { encodePurchaseOrder, encodePurchaseOrderPage, PurchaseOrder, PurchaseOrderPage } from "../src/Api.js"

const page = fc.tuple(fc.array(Arbitrary.make(PurchaseOrder), { maxLength: 5 }), fc.option(fc.uuid(), { nil: null }))
  .map(([items, nextCursor]) => new PurchaseOrderPage({ items, nextCursor }))

describe("encoding the purchase-order responses without the schema", () => {
  it("gives what Schema.encode gives, and decodes back, for every order", () => {
    fc.assert(
      fc.property(Arbitrary.make(PurchaseOrder), (value) => {
        const encoded = encodePurchaseOrder(value)
        expect(JSON.stringify(encoded)).toBe(JSON.stringify(Schema.encodeSync(PurchaseOrder)(value)))
        expect(Schema.decodeUnknownSync(PurchaseOrder)(JSON.parse(JSON.stringify(encoded)))).toEqual(value)
      }),
      { numRuns: 500 }
    )
  })

  it("gives what Schema.encode gives, and decodes back, for every page", () => {
    fc.assert(
      fc.property(page, (value) => {
        const encoded = encodePurchaseOrderPage(value)
        expect(JSON.stringify(encoded)).toBe(JSON.stringify(Schema.encodeSync(PurchaseOrderPage)(value)))
        expect(Schema.decodeUnknownSync(PurchaseOrderPage)(JSON.parse(JSON.stringify(encoded)))).toEqual(value)
      }),
      { numRuns: 200 }
    )
  })
})

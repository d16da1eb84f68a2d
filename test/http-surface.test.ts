// The public surface of @prisma-resilience/http as DESIGN.md promises it: the
// API definition, the server layer, a `main` for `npm start` and a web handler.
import { HttpApi } from "@effect/platform"
import * as Http from "@prisma-resilience/http"
import { Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"

describe("@prisma-resilience/http public surface", () => {
  it("exports the API definition with its groups", () => {
    expect(HttpApi.isHttpApi(Http.Api)).toBe(true)
    expect(Object.keys(Http.Api.groups).sort()).toEqual(["health", "metrics", "purchaseOrders"])
  })

  it("exports the server layer, main and the web handler", () => {
    expect(Layer.isLayer(Http.Server.layer)).toBe(true)
    expect(Effect.isEffect(Http.main)).toBe(true)
    expect(typeof Http.WebHandler.make).toBe("function")
  })
})

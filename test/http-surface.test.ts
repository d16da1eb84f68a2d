// The public surface of @prisma-resilience/http as DESIGN.md promises it: the
// API definition, the server layer, a `main` for `npm start` and a web handler.
// The service is on Effect 4 while the repository's root keeps Effect 3, so
// the checks use the Effect 4 the http package itself resolves.
import * as Http from "@prisma-resilience/http"
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { describe, expect, it } from "vitest"

const fromHttp = createRequire(new URL("../packages/http/package.json", import.meta.url))
const effect4 = async <A>(specifier: string): Promise<A> => import(pathToFileURL(fromHttp.resolve(specifier)).href)

describe("@prisma-resilience/http public surface", () => {
  it("exports the API definition with its groups", async () => {
    const { HttpApi } = await effect4<{ HttpApi: { isHttpApi: (u: unknown) => boolean } }>("effect/http-api")
    expect(HttpApi.isHttpApi(Http.Api)).toBe(true)
    expect(Object.keys(Http.Api.groups).sort()).toEqual(["health", "metrics", "purchaseOrders"])
  })

  it("exports the server layer, main and the web handler", async () => {
    const { Effect, Layer } = await effect4<{
      Effect: { isEffect: (u: unknown) => boolean }
      Layer: { isLayer: (u: unknown) => boolean }
    }>("effect")
    expect(Layer.isLayer(Http.Server.layer)).toBe(true)
    expect(Effect.isEffect(Http.main)).toBe(true)
    expect(typeof Http.WebHandler.make).toBe("function")
  })
})

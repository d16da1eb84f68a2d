/**
 * `GET /docs`: Scalar's page from `HttpApiScalar`, several MB, nearly all of
 * it Scalar's own script. Served as it comes, it cost that much per request
 * and, under a few clients pulling it, the latency of every other route. Here
 * it is rendered on the first request instead of at start-up, compressed once
 * off the event loop, and served from memory: brotli or gzip when the client
 * takes it, an `ETag` with `Cache-Control`, 304 when the client has it
 * already. (Effect 4's `HttpApiScalar` imports the script itself only when
 * its layer is built, so the module can be imported statically: the script
 * stays out of the start path and of the heap until then.)
 */
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiScalar } from "effect/http-api"
import { createHash } from "node:crypto"
import zlib from "node:zlib"
import { Api } from "../Api.js"

const path = "/docs"

interface Page {
  readonly etag: string
  readonly identity: Uint8Array
  readonly br: Uint8Array
  readonly gzip: Uint8Array
}

type Encoding = "br" | "gzip" | "identity"

// A deployment changes the page; the ETag makes revalidating it cheap afterwards.
const cacheControl = "public, max-age=300"

const compress = (
  f: (input: Uint8Array, options: zlib.BrotliOptions & zlib.ZlibOptions, callback: zlib.CompressCallback) => void,
  input: Uint8Array,
  options: zlib.BrotliOptions & zlib.ZlibOptions
) =>
  Effect.callback<Uint8Array>((resume) =>
    f(input, options, (error, output) => resume(error ? Effect.die(error) : Effect.succeed(output)))
  )

/** The page as `HttpApiScalar.layer` serves it, asked for once through a web handler of its own. */
const render: Effect.Effect<Page> = Effect.gen(function*() {
  const identity = yield* Effect.acquireUseRelease(
    Effect.sync(() =>
      HttpRouter.toWebHandler(HttpApiScalar.layer(Api, { path }).pipe(Layer.provide(HttpServer.layerServices)), {
        disableLogger: true
      })
    ),
    ({ handler }) =>
      Effect.promise(async () => {
        const response = await handler(new Request(`http://docs${path}`))
        if (response.status !== 200) throw new Error(`HttpApiScalar answered ${response.status}`)
        return new Uint8Array(await response.arrayBuffer())
      }),
    ({ dispose }) => Effect.promise(dispose)
  )
  // Brotli quality 5 of 11: 0.82 MB in about 0.1 s; 11 would save another
  // 0.1 MB for some 10 s of CPU, which the first request would wait for.
  const [br, gzip] = yield* Effect.all([
    compress(zlib.brotliCompress, identity, {
      params: {
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
        [zlib.constants.BROTLI_PARAM_QUALITY]: 5,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: identity.byteLength
      }
    }),
    compress(zlib.gzip, identity, { level: 9 })
  ], { concurrency: 2 })
  const etag = `W/"${createHash("sha256").update(identity).digest("base64url").slice(0, 27)}"`
  return { etag, identity, br, gzip }
})

/** The coding to send for an `Accept-Encoding`: brotli, then gzip, when their q-value is not 0. */
const negotiate = (acceptEncoding: string | undefined): Encoding => {
  const q = new Map<string, number>()
  for (const item of (acceptEncoding ?? "").split(",")) {
    const [coding = "", ...parameters] = item.split(";")
    const weight = parameters.map((p) => /^\s*q\s*=\s*([\d.]+)\s*$/i.exec(p)?.[1]).find((w) => w !== undefined)
    q.set(coding.trim().toLowerCase(), weight === undefined ? 1 : Number(weight))
  }
  const accepts = (coding: string) => (q.get(coding) ?? q.get("*") ?? 0) > 0
  return accepts("br") ? "br" : accepts("gzip") ? "gzip" : "identity"
}

/** Whether an `If-None-Match` lists `etag` (weak comparison, as for GET) or is `*`. */
const matches = (ifNoneMatch: string | undefined, etag: string): boolean => {
  if (ifNoneMatch === undefined) return false
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "")
  return ifNoneMatch.split(",").some((tag) => tag.trim() === "*" || opaque(tag) === opaque(etag))
}

/** `GET /docs`, for the router of `Api`. */
export const layer = HttpRouter.use((router) =>
  Effect.gen(function*() {
    const page = yield* Effect.cached(render)
    yield* router.add(
      "GET",
      path,
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const { etag, ...bodies } = yield* page
        const headers = { etag, "cache-control": cacheControl, vary: "accept-encoding" }
        if (matches(request.headers["if-none-match"], etag)) return HttpServerResponse.empty({ status: 304, headers })
        const encoding = negotiate(request.headers["accept-encoding"])
        return HttpServerResponse.uint8Array(bodies[encoding], {
          contentType: "text/html; charset=utf-8",
          headers: encoding === "identity" ? headers : { ...headers, "content-encoding": encoding }
        })
      })
    )
  })
)

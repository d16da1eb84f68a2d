// What clients send, against the real server and PostgreSQL: no input may
// produce a 500, nothing is stored other than as sent, POST takes UTF-8 JSON
// only; and `/docs`, served compressed and cached.
import type { Cluster } from "@prisma-resilience/devdb"
import fc from "fast-check"
import http from "node:http"
import zlib from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, type RunningServer, sql, startDatabase, startServer } from "./support.js"

let cluster: Cluster
let server: RunningServer

beforeAll(async () => {
  cluster = await startDatabase()
  server = await startServer(cluster.url)
  await eventually(async () => (await fetch(`${server.baseUrl}/health`)).status === 200)
})

afterAll(async () => {
  await server?.stop()
  await cluster?.destroy()
})

interface Answer {
  readonly status: number
  readonly text: string
  readonly body: any
}

const read = async (response: Response): Promise<Answer> => {
  const text = await response.text()
  return { status: response.status, text, body: text === "" ? undefined : JSON.parse(text) }
}

/**
 * POST /purchase-orders with exactly these bytes and headers: a string is
 * sent as its UTF-8 bytes, and fetch adds no Content-Type of its own.
 */
const post = async (body: string | Uint8Array, headers: Record<string, string> = { "content-type": "application/json" }) =>
  read(
    await fetch(`${server.baseUrl}/purchase-orders`, {
      method: "POST",
      headers,
      body: typeof body === "string" ? Buffer.from(body, "utf8") : body,
      // an unanswered request fails here instead of hanging the property
      signal: AbortSignal.timeout(10_000)
    })
  )

const rows = async (reference: string) =>
  (await sql<{ n: number }>(cluster, `SELECT count(*)::int AS n FROM purchase_order WHERE reference = $1`, [reference]))[0]!.n

const expectBadRequest = (answer: Answer, path: Array<string>, message: RegExp) => {
  expect(answer.status, answer.text).toBe(400)
  expect(answer.body._tag).toBe("HttpApiDecodeError")
  expect(answer.body.issues[0].path).toEqual(path)
  expect(answer.body.issues[0].message).toMatch(message)
}

describe("POST /purchase-orders input", () => {
  it("#10 answers 400 naming the field for a NUL character, instead of a 500 from PostgreSQL", async () => {
    expectBadRequest(await post(JSON.stringify({ reference: "PO-NUL\u0000", totalCents: 1 })), ["reference"], /NUL/)
    expectBadRequest(
      await post(JSON.stringify({ reference: "PO-NUL-NOTE", totalCents: 1, note: "a\u0000b" })),
      ["note"],
      /NUL/
    )
    expect(await rows("PO-NUL-NOTE")).toBe(0)
  })

  it("#10 answers 400 for deeply nested JSON without echoing it", async () => {
    const nested = (depth: number, open: string, close: string, inner = "1") => open.repeat(depth) + inner + close.repeat(depth)
    const bodies = [
      nested(20_000, "[", "]", ""), // 40 KB of arrays
      `{"reference":${nested(8_000, "[", "]")},"totalCents":1}`,
      `{"reference":"PO-DEEP","totalCents":1,"note":${nested(3_000, '{"a":', "}")}}`,
      `{"reference":"PO-DEEP","totalCents":1,"note":${nested(5_000, '{"a":', "}")}}`
    ]
    for (const body of bodies) {
      const answer = await post(body)
      expect(answer.status, answer.text.slice(0, 200)).toBe(400)
      expect(answer.body).toMatchObject({ _tag: "HttpApiDecodeError", message: "request body nests arrays or objects more than 64 levels deep" })
      expect(answer.text.length).toBeLessThan(500)
    }
    // Within the limit the schema names the field, and quotes nothing of the value.
    const shallow = await post(`{"reference":"PO-DEEP","totalCents":1,"note":${nested(60, '{"a":', "}")}}`)
    expectBadRequest(shallow, ["note"], /^must be a string$/)
    expect(shallow.text.length).toBeLessThan(500)
  })

  it("#11 answers 400 for an unpaired surrogate instead of storing U+FFFD, so two references cannot collide", async () => {
    // JSON.stringify escapes them: the bytes are ASCII, the decoded strings are not well-formed.
    for (const reference of ["PO-\ud800", "PO-\udc00"]) {
      expectBadRequest(await post(JSON.stringify({ reference, totalCents: 1 })), ["reference"], /well-formed Unicode/)
    }
    expectBadRequest(
      await post(JSON.stringify({ reference: "PO-SURROGATE-NOTE", totalCents: 1, note: "x\ud83d" })),
      ["note"],
      /well-formed Unicode/
    )
    expect(await rows("PO-\ufffd")).toBe(0)
    // A real pair is one character, stored and returned as sent.
    const emoji = await post(JSON.stringify({ reference: "PO-\ud83d\ude00", totalCents: 1, note: "caf\u00e9 \u{1f600}" }))
    expect(emoji.status, emoji.text).toBe(201)
    expect(emoji.body).toMatchObject({ reference: "PO-\u{1f600}", note: "caf\u00e9 \u{1f600}" })
    expect(await rows("PO-\u{1f600}")).toBe(1)
  })

  it("#11 refuses a body that is not UTF-8 (400) or declares another charset (415), and honours charset=utf-8", async () => {
    const latin1 = Buffer.from(`{"reference":"PO-CAF\u00c9","totalCents":1}`, "latin1")
    const invalid = await post(latin1)
    expect(invalid.status).toBe(400)
    expect(invalid.body).toMatchObject({ _tag: "HttpApiDecodeError", message: "request body is not valid UTF-8" })
    for (const charset of ["latin1", "ISO-8859-1", "utf-16", "\"windows-1252\""]) {
      const refused = await post(latin1, { "content-type": `application/json; charset=${charset}` })
      expect(refused.status, charset).toBe(415)
      expect(refused.body._tag).toBe("UnsupportedMediaType")
    }
    expect(await rows("PO-CAF\ufffd")).toBe(0)
    for (const [charset, reference] of [["utf-8", "PO-CAF\u00c9-1"], ["\"UTF-8\"", "PO-CAF\u00c9-2"]] as const) {
      const created = await post(JSON.stringify({ reference, totalCents: 1 }), {
        "content-type": `application/json; charset=${charset}`
      })
      expect(created.status, created.text).toBe(201)
      expect(created.body.reference).toBe(reference)
    }
  })

  it("answers 413 to a chunked body (no Content-Length) over MAX_BODY_BYTES, and creates nothing", async () => {
    const reference = `chunked-${Date.now()}`
    const padding = "x".repeat(100 * 1024) // over the default 65 536 bytes
    const text = JSON.stringify({ reference, totalCents: 1, note: padding })
    const bytes = Buffer.from(text, "utf8")
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 16 * 1024) controller.enqueue(bytes.subarray(at, at + 16 * 1024))
        controller.close()
      }
    })
    const response = await fetch(`${server.baseUrl}/purchase-orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
      signal: AbortSignal.timeout(10_000)
    } as RequestInit)
    const answer = await read(response)
    expect(answer.status, answer.text).toBe(413)
    expect(answer.body._tag).toBe("PayloadTooLarge")
    expect(await rows(reference)).toBe(0)
    // and a chunked body within the limit is read whole
    const small = JSON.stringify({ reference, totalCents: 1 })
    const ok = await fetch(`${server.baseUrl}/purchase-orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(Buffer.from(small.slice(0, 5)))
          controller.enqueue(Buffer.from(small.slice(5)))
          controller.close()
        }
      }),
      duplex: "half",
      signal: AbortSignal.timeout(10_000)
    } as RequestInit)
    expect(ok.status, await ok.clone().text()).toBe(201)
    expect(await rows(reference)).toBe(1)
  })

  it("#12 answers 415 unless the Content-Type is application/json, and creates nothing", async () => {
    const body = JSON.stringify({ reference: "PO-MEDIA", totalCents: 1 })
    const refused: Array<Record<string, string>> = [
      {}, // what a cross-origin fetch or form without a preflight can send
      { "content-type": "text/plain" },
      { "content-type": "text/plain;charset=UTF-8" },
      { "content-type": "application/x-www-form-urlencoded" },
      { "content-type": "multipart/form-data; boundary=x" },
      { "content-type": "application/jsonp" },
      { "content-type": "application/merge-patch+json" }
    ]
    for (const headers of refused) {
      const answer = await post(body, headers)
      expect(answer.status, JSON.stringify(headers)).toBe(415)
      expect(answer.body._tag).toBe("UnsupportedMediaType")
      expect(answer.body.message).toMatch(/application\/json/)
    }
    expect(await rows("PO-MEDIA")).toBe(0)
    expect((await post(body, { "content-type": "Application/JSON" })).status).toBe(201)
    // Only routes that take a body check it: an unknown route is still a 404.
    const unknown = await fetch(`${server.baseUrl}/nowhere`, { method: "POST", body: Buffer.from("x") })
    expect(unknown.status).toBe(404)
  })
})

// Any JSON value, any string (UTF-16 code units, so unpaired surrogates and
// NUL included), nesting far past the limit, and raw bytes; weighted towards
// orders that are valid or nearly so, sent as JSON, so that the database is
// reached too.
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit))
const anyString = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.string({ unit: anyUnit }))
const anyJson = fc.oneof(fc.jsonValue(), anyString, fc.double(), fc.integer())
const nesting = fc.tuple(fc.integer({ min: 1, max: 6_000 }), fc.constantFrom(["[", "]"], ['{"a":', "}"])).map(
  ([depth, [open, close]]) => `${open!.repeat(depth)}1${close!.repeat(depth)}`
)
const order = fc.record(
  {
    reference: fc.oneof(
      { arbitrary: fc.string({ unit: anyUnit, maxLength: 40 }).map((s) => `PO-${s}-P`), weight: 4 },
      { arbitrary: anyString, weight: 1 },
      { arbitrary: anyJson, weight: 1 }
    ),
    totalCents: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 2_147_483_647 }), weight: 4 },
      { arbitrary: fc.oneof(fc.integer(), fc.double(), anyJson), weight: 1 }
    ),
    note: fc.oneof({ arbitrary: anyString, weight: 3 }, { arbitrary: anyJson, weight: 1 })
  },
  { requiredKeys: [] }
)
const bodyText = fc.oneof(
  { arbitrary: order.map((o) => JSON.stringify(o)), weight: 6 },
  fc.tuple(order, fc.dictionary(anyString, anyJson, { maxKeys: 3 })).map(([o, extra]) => JSON.stringify({ ...extra, ...o })),
  anyJson.map((v) => JSON.stringify(v) ?? "null"),
  fc.tuple(fc.constantFrom("reference", "note", "totalCents"), nesting).map(([key, value]) =>
    `{"reference":"PO-P","totalCents":1,"${key}":${value}}`
  ),
  nesting,
  anyString
)
const body = fc.oneof(
  { arbitrary: bodyText.map((text) => Buffer.from(text, "utf8")), weight: 6 },
  { arbitrary: fc.uint8Array({ maxLength: 300 }).map(Buffer.from), weight: 1 }
)
const contentType = fc.oneof(
  { arbitrary: fc.constantFrom("application/json", "application/json; charset=utf-8"), weight: 8 },
  fc.constant(undefined),
  fc.constantFrom(
    "application/json; charset=latin1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x"
  ),
  fc.string({ unit: "grapheme-ascii", maxLength: 60 })
)
const idempotencyKey = fc.option(fc.string({ unit: "grapheme-ascii", maxLength: 300 }), { nil: undefined })
// Query strings and path segments as arbitrary bytes, percent-encoded.
const percentEncoded = fc.uint8Array({ maxLength: 60 }).map((bytes) =>
  [...bytes].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")
)
const queryValue = fc.oneof(percentEncoded, fc.string({ unit: "grapheme-ascii", maxLength: 40 }).map(encodeURIComponent))
const query = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom("limit", "cursor"), queryValue), queryValue).map(([k, v]) => `${k}=${v}`),
  { maxLength: 4 }
).map((pairs) => pairs.join("&"))

describe("no client input produces a 500 (property-based)", () => {
  it("#10 POST /purchase-orders: every body, Content-Type and Idempotency-Key gets 201, 400, 409, 415 or 422; a 201 stores exactly what was sent", async () => {
    await fc.assert(
      fc.asyncProperty(body, contentType, idempotencyKey, async (bytes, type, key) => {
        const headers: Record<string, string> = {}
        if (type !== undefined) headers["content-type"] = type
        if (key !== undefined) headers["idempotency-key"] = key
        const answer = await post(bytes, headers)
        expect([201, 400, 409, 415, 422], answer.text.slice(0, 300)).toContain(answer.status)
        expect(answer.text.length).toBeLessThan(4_096)
        if (answer.status === 201) {
          const sent = JSON.parse(bytes.toString("utf8"))
          expect(answer.body.reference).toBe(sent.reference)
          expect(answer.body.note).toBe(sent.note ?? null)
        } else {
          expect(typeof answer.body._tag).toBe("string")
          expect(typeof answer.body.message).toBe("string")
        }
      }),
      // Bounded, shrinking included: a failure is reported with the smallest input found within the limit.
      { numRuns: 200, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true }
    )
  })

  it("#10 GET /purchase-orders?… and /purchase-orders/:id: every query string and id gets 200, 400 or 404", async () => {
    await fc.assert(
      fc.asyncProperty(query, percentEncoded, async (q, id) => {
        for (const path of [`/purchase-orders?${q}`, `/purchase-orders/${id}`]) {
          const answer = await read(await fetch(`${server.baseUrl}${path}`, { signal: AbortSignal.timeout(10_000) }))
          expect([200, 400, 404], `${path} ${answer.text.slice(0, 300)}`).toContain(answer.status)
          expect(answer.text.length).toBeLessThan(4_096)
        }
      }),
      { numRuns: 200, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true }
    )
  })
})

// fetch decompresses by itself and always asks for gzip and br: node:http
// sends only the given headers and shows the bytes on the wire.
const docs = (headers: Record<string, string>) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    http.get(`${server.baseUrl}/docs`, { headers }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }))
      response.on("error", reject)
    }).on("error", reject)
  })

describe("GET /docs", () => {
  it("#13 is compressed when the client accepts it, carries an ETag and Cache-Control, and is 304 when the client has it", async () => {
    const plain = await docs({})
    expect(plain.status).toBe(200)
    expect(plain.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(plain.headers["content-encoding"]).toBeUndefined()
    expect(plain.body.toString("utf8")).toContain("<!doctype html>")
    const etag = plain.headers.etag as string
    expect(etag).toMatch(/^W\/".+"$/)
    expect(plain.headers["cache-control"]).toMatch(/max-age=\d+/)
    expect(plain.headers.vary).toMatch(/accept-encoding/i)

    for (const [accept, coding] of [["gzip, deflate, br", "br"], ["gzip", "gzip"], ["br;q=0, gzip;q=0.5", "gzip"]] as const) {
      const compressed = await docs({ "accept-encoding": accept })
      expect(compressed.headers["content-encoding"], accept).toBe(coding)
      expect(compressed.headers.etag).toBe(etag)
      // 3.3 MB as 0.8 MB (br) or 0.9 MB (gzip)
      expect(compressed.body.length * 3).toBeLessThan(plain.body.length)
      const decoded = coding === "br" ? zlib.brotliDecompressSync(compressed.body) : zlib.gunzipSync(compressed.body)
      expect(decoded.equals(plain.body)).toBe(true)
    }

    const revalidated = await docs({ "if-none-match": etag, "accept-encoding": "br" })
    expect(revalidated.status).toBe(304)
    expect(revalidated.headers.etag).toBe(etag)
    expect(revalidated.body.length).toBe(0)
    expect((await docs({ "if-none-match": "W/\"other\"" })).status).toBe(200)
  })
})

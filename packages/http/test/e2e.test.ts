// The real server (in-process, real HTTP on 127.0.0.1) against a real
// embedded PostgreSQL: every route and status, idempotency under a connection
// killed after the insert, warm-up, and an outage with recovery.
import { type Cluster, startProxy } from "@prisma-resilience/devdb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  eventually,
  type RunningServer,
  sql,
  startCuttingProxy,
  startDatabase,
  startServer,
  urlVia
} from "./support.js"

let cluster: Cluster
let server: RunningServer
const bodies: Array<string> = []
const cleanups: Array<() => Promise<void>> = []

// Every response body is kept, to check at the end that none holds a secret.
const call = async (base: string, path: string, init?: RequestInit) => {
  const response = await fetch(`${base}${path}`, init)
  const text = await response.text()
  bodies.push(text)
  return { status: response.status, headers: response.headers, text, body: text === "" ? undefined : JSON.parse(text) }
}
const get = (path: string) => call(server.baseUrl, path)
const post = (path: string, body: unknown, headers: Record<string, string> = {}, base = server.baseUrl) =>
  call(base, path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body)
  })

beforeAll(async () => {
  cluster = await startDatabase()
  server = await startServer(cluster.url)
  await eventually(async () => (await fetch(`${server.baseUrl}/health`)).status === 200)
})

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  await server?.stop()
  await cluster?.destroy()
})

describe("probes", () => {
  it("GET /live answers 200 without the database", async () => {
    const response = await get("/live")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("application/health+json")
    expect(response.body).toEqual({ status: "pass" })
  })

  it("GET /health passes with the probe latency and the warm-up duration", async () => {
    const response = await get("/health")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("application/health+json")
    expect(response.headers.get("cache-control")).toBe("no-store")
    expect(response.body.status).toBe("pass")
    const [probe] = response.body.checks["postgres:responseTime"]
    expect(probe).toMatchObject({ componentType: "datastore", observedUnit: "ms", status: "pass" })
    expect(probe.observedValue).toBeGreaterThan(0)
    const [warmup] = response.body.checks["postgres:warmup"]
    expect(warmup).toMatchObject({ observedUnit: "ms", status: "pass" })
    // The warm-up this server did, as its log reported it when it finished.
    const logged = server.logs.map((line) => /Warmup complete in (\d+) ms \((\d+) attempt\(s\)\)/.exec(line))
      .find((match) => match !== null)
    expect(logged, server.logs.join("\n")).toBeDefined()
    expect(warmup.observedValue).toBe(Number(logged![1]))
    expect(warmup.output).toBe(`${logged![2]} attempt(s)`)
  })

  it("serves /openapi.json and /docs from the same definitions", async () => {
    const spec = await get("/openapi.json")
    expect(spec.status).toBe(200)
    expect(Object.keys(spec.body.paths)).toEqual(
      expect.arrayContaining(["/live", "/health", "/metrics", "/purchase-orders", "/purchase-orders/{id}"])
    )
    expect(Object.keys(spec.body.paths["/purchase-orders"].post.responses)).toEqual(
      expect.arrayContaining(["201", "400", "409", "422", "503"])
    )
    const docs = await fetch(`${server.baseUrl}/docs`)
    expect(docs.status).toBe(200)
    expect(docs.headers.get("content-type")).toContain("text/html")
    await docs.text()
  })
})

describe("purchase orders", () => {
  it("creates an order (201) and reads it back (200)", async () => {
    const created = await post("/purchase-orders", { reference: "PO-E2E-1", totalCents: 12_345, note: "first" })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ reference: "PO-E2E-1", totalCents: 12_345, note: "first" })
    const read = await get(`/purchase-orders/${created.body.id}`)
    expect(read.status).toBe(200)
    expect(read.body).toEqual(created.body)
    expect(read.body).not.toHaveProperty("idempotencyKey")
  })

  it("answers 404 for an unknown id and 400 naming `id` for a malformed one", async () => {
    const missing = await get("/purchase-orders/00000000-0000-4000-8000-000000000000")
    expect(missing.status).toBe(404)
    expect(missing.body._tag).toBe("PurchaseOrderNotFound")
    const malformed = await get("/purchase-orders/not-a-uuid")
    expect(malformed.status).toBe(400)
    expect(malformed.body.issues[0].path).toEqual(["id"])
  })

  it("pages newest first with limit and cursor", async () => {
    for (const n of [1, 2, 3]) {
      expect((await post("/purchase-orders", { reference: `PO-PAGE-${n}`, totalCents: n })).status).toBe(201)
    }
    const first = await get("/purchase-orders?limit=2")
    expect(first.status).toBe(200)
    expect(first.body.items.map((o: { reference: string }) => o.reference)).toEqual(["PO-PAGE-3", "PO-PAGE-2"])
    expect(typeof first.body.nextCursor).toBe("string")
    const second = await get(`/purchase-orders?limit=2&cursor=${first.body.nextCursor}`)
    expect(second.body.items[0].reference).toBe("PO-PAGE-1")
    const all = await get("/purchase-orders?limit=100")
    expect(all.body.nextCursor).toBeNull()
    expect(all.body.items.length).toBeGreaterThanOrEqual(4)
  })

  it("answers 400 with the bad field for invalid input", async () => {
    const cases: Array<[unknown, Array<PropertyKey>]> = [
      [{ reference: "PO-BAD", totalCents: -1 }, ["totalCents"]],
      [{ reference: "PO-BAD", totalCents: "100" }, ["totalCents"]],
      [{ reference: "PO-BAD", totalCents: 1.5 }, ["totalCents"]],
      [{ totalCents: 100 }, ["reference"]],
      [{ reference: " padded ", totalCents: 100 }, ["reference"]],
      [{ reference: "PO-BAD", totalCents: 100, unknownField: true }, ["unknownField"]],
      [{ reference: "PO-BAD", totalCents: 100, note: 7 }, ["note"]]
    ]
    for (const [body, path] of cases) {
      const response = await post("/purchase-orders", body)
      expect(response.status, JSON.stringify(body)).toBe(400)
      expect(response.body._tag).toBe("HttpApiDecodeError")
      expect(response.body.issues[0].path, JSON.stringify(body)).toEqual(path)
    }
    const limit = await get("/purchase-orders?limit=0")
    expect(limit.status).toBe(400)
    expect(limit.body.issues[0].path).toEqual(["limit"])
    expect((await get("/purchase-orders?unknown=1")).status).toBe(400)
    expect((await sql<{ n: number }>(cluster, `SELECT count(*)::int AS n FROM purchase_order WHERE reference = 'PO-BAD'`))[0]!.n)
      .toBe(0)
  })

  it("answers 400 for malformed JSON and 413 for an oversized body", async () => {
    const malformed = await post("/purchase-orders", `{"reference": "PO-X",`)
    expect(malformed.status).toBe(400)
    expect(malformed.body).toMatchObject({ _tag: "HttpApiDecodeError", message: "request body is not valid JSON" })
    const oversized = await post("/purchase-orders", { reference: "PO-BIG", totalCents: 1, note: "x".repeat(100_000) })
    expect(oversized.status).toBe(413)
    expect(oversized.body).toEqual({ _tag: "PayloadTooLarge", message: "request body exceeds 65536 bytes" })
  })

  it("answers 409 for a duplicate reference", async () => {
    expect((await post("/purchase-orders", { reference: "PO-DUP", totalCents: 1 })).status).toBe(201)
    const duplicate = await post("/purchase-orders", { reference: "PO-DUP", totalCents: 2 })
    expect(duplicate.status).toBe(409)
    expect(duplicate.body).toMatchObject({ _tag: "DuplicateReference", reference: "PO-DUP" })
  })

  it("answers 404 with JSON for an unknown route or method", async () => {
    const route = await get("/nowhere")
    expect(route.status).toBe(404)
    expect(route.body._tag).toBe("RouteNotFound")
    const method = await call(server.baseUrl, "/purchase-orders", { method: "DELETE" })
    expect(method.status).toBe(404)
  })
})

describe("Idempotency-Key", () => {
  it("returns the same order for the same key and body, and 422 for another body", async () => {
    const body = { reference: "PO-IDEM-1", totalCents: 500 }
    const first = await post("/purchase-orders", body, { "idempotency-key": "key-1" })
    const again = await post("/purchase-orders", body, { "idempotency-key": "key-1" })
    expect(first.status).toBe(201)
    expect(again.status).toBe(201)
    expect(again.body).toEqual(first.body)
    const rows = await sql<{ n: number }>(cluster, `SELECT count(*)::int AS n FROM purchase_order WHERE idempotency_key = 'key-1'`)
    expect(rows[0]!.n).toBe(1)

    const other = await post("/purchase-orders", { ...body, totalCents: 501 }, { "idempotency-key": "key-1" })
    expect(other.status).toBe(422)
    expect(other.body._tag).toBe("IdempotencyKeyReused")
    // a new key for a taken reference is a conflict, not a replay
    const taken = await post("/purchase-orders", body, { "idempotency-key": "key-2" })
    expect(taken.status).toBe(409)
  })

  it("creates one row when the connection dies after the insert committed", async () => {
    const proxy = await startCuttingProxy(cluster)
    cleanups.push(() => proxy.close())
    const viaProxy = await startServer(urlVia(cluster, proxy.port), { DB_RETRY_DELAYS_MS: "100,200" })
    cleanups.push(() => viaProxy.stop())
    await eventually(async () => (await fetch(`${viaProxy.baseUrl}/health`)).status === 200)

    proxy.arm()
    const body = { reference: "PO-CUT-1", totalCents: 700 }
    const response = await post("/purchase-orders", body, { "idempotency-key": "cut-key-1" }, viaProxy.baseUrl)
    expect(proxy.cuts).toBe(1)
    expect(response.status).toBe(201)
    expect(response.body).toMatchObject(body)
    const rows = await sql<{ id: string }>(cluster, `SELECT id FROM purchase_order WHERE idempotency_key = 'cut-key-1'`)
    expect(rows.map((row) => row.id)).toEqual([response.body.id])
    // the first attempt failed on the cut connection, the retry found the committed row
    expect(viaProxy.logs.some((line) => /purchaseOrder\.create attempt 1\/3 failed: ConnectionError/.test(line))).toBe(true)

    // Without a key the insert cannot be run again blindly, and need not be:
    // txid_status says the transaction committed, so it is answered 201, once.
    proxy.arm()
    const unkeyed = await post("/purchase-orders", { reference: "PO-CUT-2", totalCents: 1 }, {}, viaProxy.baseUrl)
    expect(proxy.cuts).toBe(2)
    expect(unkeyed.status).toBe(201)
    expect(await sql(cluster, `SELECT id FROM purchase_order WHERE reference = 'PO-CUT-2'`)).toEqual([{ id: unkeyed.body.id }])
  })
})

describe("warm-up", () => {
  it("listens before the database is reachable, says warming, and lets requests wait for it", async () => {
    const proxy = await startProxy(cluster)
    cleanups.push(() => proxy.close())
    proxy.refuse(true)
    const warming = await startServer(urlVia(cluster, proxy.port), {
      DB_WARMUP_WAIT_MS: "5000",
      DB_WARMUP_BACKOFF_MAX_MS: "200",
      DB_ATTEMPT_TIMEOUT_MS: "1000",
      DB_RETRY_DELAYS_MS: "200,400"
    })
    cleanups.push(() => warming.stop())

    const health = await call(warming.baseUrl, "/health")
    expect(health.status).toBe(503)
    expect(health.body).toMatchObject({ status: "fail", reason: "warming" })
    expect(health.headers.get("retry-after")).toBe("1")

    const waiting = call(warming.baseUrl, "/purchase-orders?limit=1")
    await eventually(async () => proxy.accepted >= 2, 50)
    proxy.refuse(false)
    const response = await waiting
    expect(response.status).toBe(200)
    expect(response.body.items).toHaveLength(1)
    expect((await call(warming.baseUrl, "/health")).status).toBe(200)
  })

  it("answers 503 with Retry-After when warm-up takes longer than the request may wait", async () => {
    const proxy = await startProxy(cluster)
    cleanups.push(() => proxy.close())
    proxy.refuse(true)
    const warming = await startServer(urlVia(cluster, proxy.port), { DB_WARMUP_WAIT_MS: "200" })
    cleanups.push(() => warming.stop())
    const response = await call(warming.baseUrl, "/purchase-orders/00000000-0000-4000-8000-000000000000")
    expect(response.status).toBe(503)
    expect(response.headers.get("retry-after")).toBe("1")
    expect(response.body._tag).toBe("DatabaseUnavailable")
  })
})

describe("metrics", () => {
  it("exposes every metric of the design in the Prometheus text format", async () => {
    await get("/health")
    const response = await fetch(`${server.baseUrl}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
    const text = await response.text()
    for (
      const line of [
        /^# TYPE db_warmup_duration_seconds gauge$/m,
        // One registry per process: the warm-up tests' servers, still warming
        // in this process, set the same gauge to 0.
        /^db_ready\{database="default"\} [01]$/m,
        /^db_query_duration_seconds_bucket\{operation="purchaseOrder\.findUnique",le="\+Inf"\} \d+$/m,
        /^db_query_attempts_total\{operation="purchaseOrder\.create",attempt="1",outcome="success"\} \d+$/m,
        /^db_query_attempts_total\{operation="purchaseOrder\.create",attempt="1",outcome="QueryError"\} \d+$/m,
        /^db_health_checks_total\{result="pass"\} \d+$/m,
        /^db_pool_connections\{database="default"\} \d+$/m,
        /^db_pool_idle_connections\{database="default"\} \d+$/m,
        /^db_pool_waiting_clients\{database="default"\} \d+$/m
      ]
    ) expect(text).toMatch(line)
  })
})

// Last: it stops the shared cluster.
describe("database outage", () => {
  it("answers 503 with Retry-After while the database is down and recovers when it is back", async () => {
    const order = await post("/purchase-orders", { reference: "PO-OUTAGE", totalCents: 1 })
    expect(order.status).toBe(201)
    await cluster.stop("fast")
    try {
      const down = await get(`/purchase-orders/${order.body.id}`)
      expect(down.status).toBe(503)
      expect(down.headers.get("retry-after")).toBe("1")
      expect(down.body).toEqual({ _tag: "DatabaseUnavailable", message: "the database is unavailable; retry later" })
      const health = await get("/health")
      expect(health.status).toBe(503)
      expect(health.body.status).toBe("fail")
      expect(["unreachable", "timeout"]).toContain(health.body.reason)
      expect(health.body.output).toBeTypeOf("string")
    } finally {
      await cluster.start()
    }
    await eventually(async () => (await get(`/purchase-orders/${order.body.id}`)).status === 200, 50, 200)
    expect((await get("/health")).status).toBe(200)
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text()
    expect(metrics).toMatch(/^db_query_retries_total\{operation="purchaseOrder\.findUnique",error="ConnectionError"\} \d+$/m)
    expect(metrics).toMatch(/^db_health_checks_total\{result="(unreachable|timeout)"\} \d+$/m)
  })

  it("fails fast while the circuit is open: Retry-After of the next probe, /health circuit_open, then recovery", async () => {
    const guarded = await startServer(cluster.url, {
      DB_CIRCUIT_FAILURE_THRESHOLD: "2",
      DB_CIRCUIT_RESET_MS: "4000",
      RETRY_AFTER_SECONDS: "30"
    })
    cleanups.push(() => guarded.stop())
    await eventually(async () => (await call(guarded.baseUrl, "/health")).status === 200)
    const order = await post("/purchase-orders", { reference: "PO-CIRCUIT", totalCents: 1 }, {}, guarded.baseUrl)
    expect(order.status).toBe(201)
    await cluster.stop("fast")
    try {
      // Two failed attempts open the circuit; this request's third attempt is refused by it.
      const opening = await call(guarded.baseUrl, `/purchase-orders/${order.body.id}`)
      expect(opening.status).toBe(503)
      const fast = await call(guarded.baseUrl, `/purchase-orders/${order.body.id}`)
      expect(fast.status).toBe(503)
      // Not the configured 30 s: the time until the breaker's next probe.
      const retryAfter = Number(fast.headers.get("retry-after"))
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(4)
      const health = await call(guarded.baseUrl, "/health")
      expect(health.status).toBe(503)
      expect(health.body.reason).toBe("circuit_open")
      expect(Number(health.headers.get("retry-after"))).toBeLessThanOrEqual(4)
      expect(guarded.logs.some((l) => l.includes("Circuit breaker closed → open"))).toBe(true)
    } finally {
      await cluster.start()
    }
    await eventually(
      async () => (await call(guarded.baseUrl, `/purchase-orders/${order.body.id}`)).status === 200,
      50,
      200
    )
    expect(guarded.logs.some((l) => l.includes("Circuit breaker half-open → closed"))).toBe(true)
    expect(guarded.logs.some((l) => l.includes(cluster.password))).toBe(false)
  })

  it("never puts the connection string, password or a stack trace in a response or log line", () => {
    const secrets = [cluster.password, cluster.url, encodeURIComponent(cluster.password)]
    for (const text of [...bodies, ...server.logs]) {
      for (const secret of secrets) expect(text).not.toContain(secret)
      expect(text).not.toMatch(/\n\s+at /)
    }
    expect(bodies.length).toBeGreaterThan(20)
  })
})

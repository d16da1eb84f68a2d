// The Promise adapter against a real PostgreSQL: the same layer as the Effect
// API, reached from ordinary async code.
import {
  classificationOf,
  ConnectionError,
  createResilientPrisma,
  HealthError,
  Metrics,
  QueryError,
  type ResilientPrisma,
  type ResilientPrismaOptions,
  WarmupError
} from "@prisma-resilience/core"
import { freePort, startProxy, type TcpProxy } from "@prisma-resilience/devdb"
import { makePrismaClient, poolStats, Prisma, type PrismaClient, type PurchaseOrder } from "../../../core-effect3/test/fixture/client.js"
import { Effect, Metric } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, expectTypeOf, inject, it } from "vitest"
import { pool, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")
const viaPort = (port: number) => {
  const u = new URL(url)
  u.port = String(port)
  return u.toString()
}

const counter = (metric: typeof Metrics.queryAttempts, labels: Record<string, string>) =>
  Effect.runSync(
    Metric.value(metric.pipe(Metric.withAttributes(Object.entries(labels).map(([k, v]): [string, string] => [k, v]))))
  ).count
const attempts = (operation: string, attempt: number, outcome: string) =>
  counter(Metrics.queryAttempts, { operation, attempt: String(attempt), outcome })
const retries = (operation: string, error: string) => counter(Metrics.queryRetries, { operation, error })

/** Starts a request now (model calls are lazy) and captures how it settles. */
const settle = <A>(request: PromiseLike<A>) =>
  Promise.resolve(request).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error })
  )
const rejection = async (request: PromiseLike<unknown>): Promise<unknown> => {
  const result = await settle(request)
  if (result.ok) throw new Error("expected the call to reject")
  return result.error
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const unique = () => `rp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`

// Deterministic timings: small retry delays, and an attempt timeout that
// leaves room for a longer warm-up wait inside the 9 s budget.
const retry = { delaysMs: [50, 100], attemptTimeoutMs: 1000, warmupWaitMs: 1500 }

const instances: Array<ResilientPrisma<PrismaClient>> = []
const proxies: Array<TcpProxy> = []
const resilient = (target: string, overrides: Partial<ResilientPrismaOptions<PrismaClient>> = {}) => {
  const db = createResilientPrisma({
    url: target,
    client: (settings) => makePrismaClient(target, settings),
    poolStats,
    warmup,
    // Idle connections outlive the file, so socket counts stay put between tests.
    pool: { ...pool, idleTimeoutMillis: 120_000 },
    ...overrides,
    retry: { ...retry, ...overrides.retry }
  })
  instances.push(db)
  return db
}
const proxy = async () => {
  const p = await startProxy({ host: "127.0.0.1", port: Number(new URL(url).port) })
  proxies.push(p)
  return p
}
const sockets = () => process.getActiveResourcesInfo().filter((type) => type === "TCPSocketWrap").length

afterAll(async () => {
  await Promise.all(instances.map((db) => db.$disconnect()))
  await Promise.all(proxies.map((p) => p.close()))
})

describe("createResilientPrisma against a real PostgreSQL", () => {
  let db: ResilientPrisma<PrismaClient>
  let admin: pg.Client

  beforeAll(async () => {
    db = resilient(url)
    admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
    admin.on("error", () => {})
    await admin.connect()
  })
  afterAll(async () => {
    await admin?.end()
  })

  it("$ready resolves with the warm-up info, and $health passes on the same client", async () => {
    const info = await db.$ready()
    expect(info.attempts).toBe(1)
    // A real connect and probe take time, never more than the warm-up's timeout.
    expect(info.durationMs).toBeGreaterThan(0)
    expect(info.durationMs).toBeLessThan(warmup.timeoutMs)
    const report = await db.$health()
    expect(report).toMatchObject({ status: "pass", warmupMs: info.durationMs, warmupAttempts: 1 })
    expect(report.latencyMs).toBeGreaterThan(0)
  })

  it("model calls keep the client's row types and each runs as one Database.query named model.method", async () => {
    const reference = unique()
    const createdBefore = attempts("purchaseOrder.create", 1, "success")
    const foundBefore = attempts("purchaseOrder.findUnique", 1, "success")
    const created = await db.purchaseOrder.create({ data: { reference, totalCents: 1250 } })
    expectTypeOf(created).toEqualTypeOf<PurchaseOrder>()
    const found = await db.purchaseOrder.findUnique({ where: { id: created.id } })
    expectTypeOf(found).toEqualTypeOf<PurchaseOrder | null>()
    expect(found).toEqual(created)
    const selected = await db.purchaseOrder.findUnique({ where: { id: created.id }, select: { reference: true } })
    expectTypeOf(selected).toEqualTypeOf<{ reference: string } | null>()
    expect(selected).toEqual({ reference })
    expect(attempts("purchaseOrder.create", 1, "success") - createdBefore).toBe(1)
    expect(attempts("purchaseOrder.findUnique", 1, "success") - foundBefore).toBe(2)
    // The delegate functions are built once, not per call.
    expect(db.purchaseOrder.findMany).toBe(db.purchaseOrder.findMany)
    // @ts-expect-error field references need the client itself ($query)
    expect(db.purchaseOrder.fields).toBeUndefined()
    // A `$` name the client does not have is not invented.
    // @ts-expect-error not a Prisma Client method
    expect(db.$nothing).toBeUndefined()
  })

  it("model calls are lazy like Prisma's: nothing is sent until the call is awaited", async () => {
    const reference = unique()
    const pending = db.purchaseOrder.create({ data: { reference, totalCents: 1 } })
    await sleep(100)
    expect(await db.purchaseOrder.count({ where: { reference } })).toBe(0)
    await pending
    expect(await db.purchaseOrder.count({ where: { reference } })).toBe(1)
    // Awaited twice, sent once.
    await pending
    expect(await db.purchaseOrder.count({ where: { reference } })).toBe(1)
  })

  it("$queryRaw and $query run through the layer", async () => {
    const rawBefore = attempts("$queryRaw", 1, "success")
    const rows = await db.$queryRaw<Array<{ one: number }>>`SELECT 1::int AS one`
    expectTypeOf(rows).toEqualTypeOf<Array<{ one: number }>>()
    expect(rows).toEqual([{ one: 1 }])
    expect(attempts("$queryRaw", 1, "success") - rawBefore).toBe(1)

    const listBefore = attempts("it.list", 1, "success")
    const list = await db.$query((c) => c.purchaseOrder.findMany({ take: 2 }), { kind: "read", operation: "it.list" })
    expectTypeOf(list).toEqualTypeOf<Array<PurchaseOrder>>()
    expect(attempts("it.list", 1, "success") - listBefore).toBe(1)
  })

  it("a unique violation rejects with Prisma's own error (instanceof, code, meta), classified as QueryError on attempt 1, never retried", async () => {
    const reference = unique()
    await db.purchaseOrder.create({ data: { reference, totalCents: 1 } })
    const secondBefore = attempts("purchaseOrder.create", 2, "QueryError")
    const error = await rejection(db.purchaseOrder.create({ data: { reference, totalCents: 1 } }))
    expect(error).toBeInstanceOf(Prisma.PrismaClientKnownRequestError)
    expect(error).toMatchObject({ code: "P2002" })
    expect((error as Prisma.PrismaClientKnownRequestError).meta).toBeDefined()
    const classified = classificationOf(error)
    expect(classified).toBeInstanceOf(QueryError)
    expect(classified).toMatchObject({
      _tag: "QueryError",
      code: "P2002",
      safety: "never",
      operation: "purchaseOrder.create",
      attempt: 1,
      cause: error
    })
    expect(attempts("purchaseOrder.create", 2, "QueryError") - secondBefore).toBe(0)
  })

  it("a missing row (P2025) and a validation error reject with Prisma's own error classes", async () => {
    const missing = await rejection(db.purchaseOrder.update({ where: { reference: unique() }, data: { totalCents: 2 } }))
    expect(missing).toBeInstanceOf(Prisma.PrismaClientKnownRequestError)
    expect(missing).toMatchObject({ code: "P2025" })
    expect(classificationOf(missing)).toMatchObject({ _tag: "QueryError", code: "P2025", safety: "never" })
    const invalid = await rejection(
      db.purchaseOrder.create({ data: { reference: unique(), totalCents: "x" } } as never)
    )
    expect(invalid).toBeInstanceOf(Prisma.PrismaClientValidationError)
    expect(classificationOf(invalid)).toMatchObject({ _tag: "QueryError", safety: "never" })
  })

  it("a failure the layer creates stays its typed error: classificationOf returns it", async () => {
    const closed = resilient(url)
    await closed.$disconnect()
    const error = await rejection(closed.purchaseOrder.count())
    expect(error).toBeInstanceOf(ConnectionError)
    expect(classificationOf(error)).toBe(error)
  })

  it("a before-send failure is retried: a query function that fails once succeeds on attempt 2", async () => {
    let calls = 0
    const before = attempts("it.failOnce", 2, "success")
    const count = await db.$query((c) => {
      calls += 1
      return calls === 1
        ? Promise.reject(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }))
        : c.purchaseOrder.count()
    }, { operation: "it.failOnce" })
    expectTypeOf(count).toEqualTypeOf<number>()
    expect(calls).toBe(2)
    expect(attempts("it.failOnce", 2, "success") - before).toBe(1)
  })

  it("$transaction re-runs the whole function after a serialization conflict and commits once", async () => {
    const row = await db.purchaseOrder.create({ data: { reference: unique(), totalCents: 0 } })
    const retriedBefore = retries("it.conflict", "TransactionError")
    let runs = 0
    const updated = await db.$transaction(async (tx) => {
      runs += 1
      const current = await tx.purchaseOrder.findUniqueOrThrow({ where: { id: row.id } })
      // A concurrent commit between this transaction's read and its write.
      if (runs === 1) await admin.query("UPDATE purchase_order SET total_cents = total_cents + 100 WHERE id = $1", [row.id])
      return tx.purchaseOrder.update({ where: { id: row.id }, data: { totalCents: current.totalCents + 1 } })
    }, { isolationLevel: "Serializable", operation: "it.conflict" })
    expectTypeOf(updated).toEqualTypeOf<PurchaseOrder>()
    expect(runs).toBe(2)
    expect(updated.totalCents).toBe(101)
    expect(retries("it.conflict", "TransactionError") - retriedBefore).toBe(1)
    expect((await db.purchaseOrder.findUniqueOrThrow({ where: { id: row.id } })).totalCents).toBe(101)
  })

  it("a read whose connection is cut at the TCP level mid-query is retried on a new connection", async () => {
    const cutter = await proxy()
    const viaProxy = resilient(viaPort(cutter.port))
    await viaProxy.$ready()
    const before = retries("$queryRaw", "ConnectionError")
    const running = settle(viaProxy.$queryRaw<Array<{ one: number }>>`SELECT 1::int AS one FROM pg_sleep(0.5)`)
    await sleep(150)
    cutter.cutAll()
    const result = await running
    expect(result).toEqual({ ok: true, value: [{ one: 1 }] })
    expect(retries("$queryRaw", "ConnectionError") - before).toBe(1)
  })
})

describe("createResilientPrisma warm-up", () => {
  it("a call made before warm-up finished waits for it and succeeds", async () => {
    const gate = await proxy()
    gate.refuse(true)
    const db = resilient(viaPort(gate.port), { warmup: { ...warmup, backoffMs: 50, backoffMaxMs: 100 } })
    const started = Date.now()
    const health = await rejection(db.$health())
    expect(health).toBeInstanceOf(HealthError)
    expect(health).toMatchObject({ reason: "warming" })
    const early = settle(db.purchaseOrder.count())
    setTimeout(() => gate.refuse(false), 600)
    const result = await early
    expect(result).toEqual({ ok: true, value: expect.any(Number) })
    expect(Date.now() - started).toBeGreaterThanOrEqual(600)
    const info = await db.$ready()
    expect(info.attempts).toBeGreaterThan(1)
    expect((await db.$health()).status).toBe("pass")
  })

  it("a call still waiting after warmupWaitMs rejects with ConnectionError WARMUP_WAIT; the instance serves once warm", async () => {
    const gate = await proxy()
    gate.refuse(true)
    const db = resilient(viaPort(gate.port), { warmup: { ...warmup, backoffMs: 50, backoffMaxMs: 100 }, retry: { warmupWaitMs: 300 } })
    const started = Date.now()
    const error = await rejection(db.purchaseOrder.findMany())
    const waited = Date.now() - started
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({
      code: "WARMUP_WAIT",
      safety: "before-send",
      operation: "purchaseOrder.findMany",
      attempt: 0
    })
    expect(waited).toBeGreaterThanOrEqual(290)
    expect(waited).toBeLessThan(1000)
    gate.refuse(false)
    await db.$ready()
    expect(await db.purchaseOrder.findMany({ take: 1 })).toEqual(expect.any(Array))
  })

  it("against an unreachable port: $ready rejects with WarmupError quickly, calls with WARMUP_FAILED, health is unreachable", async () => {
    const port = await freePort()
    const fast = { ...warmup, timeoutMs: 500, attemptTimeoutMs: 300, backoffMs: 50, backoffMaxMs: 1000 }
    // Nobody ever awaits this one: its failed warm-up must not surface as an unhandled rejection.
    resilient(viaPort(port), { warmup: fast })
    const db = resilient(viaPort(port), { warmup: fast })
    const started = Date.now()
    const failure = await rejection(db.$ready())
    expect(Date.now() - started).toBeLessThan(2000)
    expect(failure).toBeInstanceOf(WarmupError)
    if (!(failure instanceof WarmupError)) return
    expect(failure.message).toContain("timed out after 500 ms")
    expect(failure.cause).toMatchObject({ _tag: "ConnectionError", safety: "before-send" })

    // Within warmup.backoffMaxMs of the failure: answered at once, no new warm-up.
    const health = await rejection(db.$health())
    expect(health).toBeInstanceOf(HealthError)
    expect(health).toMatchObject({ reason: "unreachable", message: failure.message, cause: failure.cause })
    const queried = Date.now()
    const error = await rejection(db.purchaseOrder.count())
    expect(Date.now() - queried).toBeLessThan(100)
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({ code: "WARMUP_FAILED", safety: "before-send", operation: "purchaseOrder.count", cause: failure })
    expect(await rejection(db.$ready())).toBe(failure)

    // Later, a call starts a new warm-up and waits for it (500 ms < warmupWaitMs).
    await sleep(1100)
    const again = await rejection(db.purchaseOrder.count())
    expect(again).toMatchObject({ code: "WARMUP_FAILED" })
    expect((again as ConnectionError).cause).toBeInstanceOf(WarmupError)
    expect((again as ConnectionError).cause).not.toBe(failure)
  })

  it("a failed warm-up does not wedge the instance: a later call warms up again once the database is reachable", async () => {
    const gate = await proxy()
    gate.refuse(true)
    const db = resilient(viaPort(gate.port), {
      warmup: { ...warmup, timeoutMs: 400, backoffMs: 50, backoffMaxMs: 200 }
    })
    expect(await rejection(db.$ready())).toBeInstanceOf(WarmupError)
    gate.refuse(false)
    await sleep(250)
    const info = await db.$ready()
    expect(info.attempts).toBe(1)
    expect(await db.purchaseOrder.count()).toEqual(expect.any(Number))
    expect((await db.$health()).status).toBe("pass")
  })

  it("a defect while building the layer rejects with the thrown value itself", async () => {
    const boom = new Error("poolStats is broken")
    const db = resilient(url, {
      poolStats: () => {
        throw boom
      }
    })
    expect(await rejection(db.$ready())).toBe(boom)
    expect(await rejection(db.purchaseOrder.count())).toBe(boom)
  })
})

describe("createResilientPrisma $disconnect", () => {
  it("closes the pool: no socket is left, and every later call rejects", async () => {
    const counted = await proxy()
    const baseline = sockets()
    const db = resilient(viaPort(counted.port))
    await Promise.all([db.purchaseOrder.count(), db.purchaseOrder.count(), db.$queryRaw`SELECT 1`])
    expect(counted.connections).toBeGreaterThan(0)
    expect(sockets()).toBeGreaterThan(baseline)

    await db.$disconnect()
    for (let i = 0; i < 20 && (counted.connections > 0 || sockets() > baseline); i++) await sleep(50)
    expect(counted.connections).toBe(0)
    expect(sockets()).toBeLessThanOrEqual(baseline)

    const accepted = counted.accepted
    const error = await rejection(db.purchaseOrder.count())
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({ code: "DISCONNECTED", safety: "never", operation: "purchaseOrder.count" })
    expect(await rejection(db.$query((c) => c.purchaseOrder.count()))).toMatchObject({ code: "DISCONNECTED" })
    expect(await rejection(db.$transaction(async (tx) => tx.purchaseOrder.count()))).toMatchObject({ code: "DISCONNECTED" })
    expect(await rejection(db.$ready())).toMatchObject({ code: "DISCONNECTED" })
    const health = await rejection(db.$health())
    expect(health).toBeInstanceOf(HealthError)
    expect(health).toMatchObject({ reason: "shutting_down" })
    expect(counted.accepted).toBe(accepted)
    await db.$disconnect()
  })

  it("during warm-up: stops it, and the calls waiting for it reject with DISCONNECTED", async () => {
    const gate = await proxy()
    gate.refuse(true)
    const db = resilient(viaPort(gate.port))
    const ready = settle(db.$ready())
    const waiting = settle(db.purchaseOrder.count())
    await sleep(200)
    const started = Date.now()
    await db.$disconnect()
    expect(Date.now() - started).toBeLessThan(warmup.shutdownTimeoutMs)
    expect(await ready).toEqual({ ok: false, error: expect.objectContaining({ code: "DISCONNECTED" }) })
    expect(await waiting).toEqual({ ok: false, error: expect.objectContaining({ code: "DISCONNECTED" }) })
    // The interrupted warm-up makes no further attempts.
    const accepted = gate.accepted
    await sleep(300)
    expect(gate.accepted).toBe(accepted)
  })
})

// An ambiguous commit gets a definite answer: the fault proxy cuts the
// connection exactly when COMMIT is sent, and the layer asks txid_status what
// happened (real PostgreSQL behind the proxy).
import { Database, type DatabaseError, Metrics, RetryPolicy } from "@prisma-resilience/core"
import { startProxy, type TcpProxy } from "@prisma-resilience/devdb"
import { describe, expect, it } from "../support/vitest.js"
import { Effect, Result, Metric } from "effect"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import { makePrismaClient, poolStats } from "../../../core-effect3/test/fixture/client.js"
import { captureLogs, Db, pool as basePool, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")
let proxy: TcpProxy
let monitor: pg.Client
let viaProxy: string

beforeAll(async () => {
  const target = new URL(url)
  proxy = await startProxy({ host: target.hostname, port: Number(target.port) })
  target.port = String(proxy.port)
  viaProxy = target.toString()
  monitor = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  await monitor.connect()
})
afterAll(async () => {
  await monitor.end()
  await proxy.close()
})

const rowsWith = (reference: string) =>
  Effect.promise(async () =>
    (await monitor.query<{ n: number }>("SELECT count(*)::int AS n FROM purchase_order WHERE reference = $1", [reference]))
      .rows[0]!.n
  )

/** The armed cut, failing fast when no COMMIT was sent at all. */
const cutDone = (cut: Promise<void>) =>
  Promise.race([
    cut,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no COMMIT was cut within 5 s")), 5000))
  ])

const unique = (what: string) => `commit-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`

const layer = (retry: Partial<RetryPolicy.RetryConfig> = {}, max = 2) =>
  Database.layer({
    client: (settings) => makePrismaClient(viaProxy, settings),
    poolStats,
    retry: { ...RetryPolicy.defaults, delaysMs: [50, 50], ...retry },
    warmup,
    pool: { ...basePool, max }
  })

const verifications = (operation: string, outcome: string) =>
  Metric.value(
    Metrics.commitVerifications.pipe(
      Metric.withAttributes([["operation", operation], ["outcome", outcome]])
    )
  ).pipe(Effect.map((state) => state.count))

describe("the fault proxy cuts exactly at COMMIT", () => {
  const session = async () => {
    const client = new pg.Client({ connectionString: viaProxy, connectionTimeoutMillis: 5_000 })
    client.on("error", () => {})
    await client.connect()
    return client
  }

  it("before: the COMMIT never reaches the server, which rolls back", async () => {
    const reference = unique("proxy-before")
    const client = await session()
    await client.query("BEGIN")
    await client.query("INSERT INTO purchase_order (id, reference, total_cents) VALUES (gen_random_uuid(), $1, 1)", [reference])
    const cut = proxy.cutOnCommit("before")
    // Not a COMMIT: passes while the cut is armed.
    expect((await client.query("SELECT 'commit' AS word")).rows).toEqual([{ word: "commit" }])
    const cuts = proxy.commitCuts
    await expect(client.query("commit")).rejects.toThrow(/Connection terminated/)
    await cutDone(cut)
    expect(proxy.commitCuts).toBe(cuts + 1)
    expect(await Effect.runPromise(rowsWith(reference))).toBe(0)
  })

  it("after: an extended-protocol COMMIT reaches the server, which commits; the client never hears", async () => {
    const reference = unique("proxy-after")
    const client = await session()
    await client.query("BEGIN")
    await client.query("INSERT INTO purchase_order (id, reference, total_cents) VALUES (gen_random_uuid(), $1, 1)", [reference])
    const cut = proxy.cutOnCommit("after")
    // Parse, Bind, Execute, Sync rather than a simple Query (pg's option, missing from @types/pg).
    const extended = { text: "  COMMIT", queryMode: "extended" } as pg.QueryConfig
    await expect(client.query(extended)).rejects.toThrow(/Connection terminated/)
    await cutDone(cut)
    expect(await Effect.runPromise(rowsWith(reference))).toBe(1)
  })
})

describe("commit verification on a real PostgreSQL", () => {
  it.live("COMMIT cut after the server got it: committed, the attempt succeeds with the function's value, run once", () =>
    Effect.gen(function*() {
      const reference = unique("committed")
      const operation = `commit.committed.${reference}`
      const before = yield* verifications(operation, "committed")
      const logs = captureLogs()
      let runs = 0
      const cut = proxy.cutOnCommit("after")
      const cuts = proxy.commitCuts
      const value = yield* Db.transaction(async (tx) => {
        runs++
        const order = await tx.purchaseOrder.create({ data: { reference, totalCents: 100 } })
        return { id: order.id, run: runs }
      }, { operation }).pipe(Effect.provide(logs.layer))
      yield* Effect.promise(() => cutDone(cut))
      console.info(`[core] commit cut after sending: ${logs.lines.join(" | ")}`)
      expect(proxy.commitCuts).toBe(cuts + 1)
      expect(value.run).toBe(1)
      expect(runs).toBe(1)
      expect(yield* rowsWith(reference)).toBe(1)
      const stored = yield* Db.query((c) => c.purchaseOrder.findUnique({ where: { reference } }))
      expect(stored?.id).toBe(value.id)
      expect((yield* verifications(operation, "committed")) - before).toBe(1)
      expect(logs.lines).toEqual([
        expect.stringMatching(
          new RegExp(`^${operation.replaceAll(".", "\\.")} attempt 1/3 failed: ConnectionError: .*txid_status\\(\\d+\\) says committed: it succeeded$`)
        )
      ])
    }).pipe(Effect.provide(layer())))

  it.live("COMMIT cut before the server got it: rolled back, the function runs again, exactly one row", () =>
    Effect.gen(function*() {
      const reference = unique("aborted")
      const operation = `commit.aborted.${reference}`
      const before = yield* verifications(operation, "aborted")
      const logs = captureLogs()
      let runs = 0
      const cut = proxy.cutOnCommit("before")
      const value = yield* Db.transaction(async (tx) => {
        runs++
        const order = await tx.purchaseOrder.create({ data: { reference, totalCents: 100 } })
        return { id: order.id, run: runs }
      }, { operation }).pipe(Effect.provide(logs.layer))
      yield* Effect.promise(() => cutDone(cut))
      console.info(`[core] commit cut before sending: ${logs.lines.join(" | ")}`)
      expect(value.run).toBe(2)
      expect(runs).toBe(2)
      expect(yield* rowsWith(reference)).toBe(1)
      expect((yield* verifications(operation, "aborted")) - before).toBe(1)
      expect(logs.lines).toEqual([
        expect.stringMatching(/attempt 1\/3 failed: ConnectionError: .*txid_status\(\d+\) says it was rolled back, retrying in 50 ms$/)
      ])
    }).pipe(Effect.provide(layer())))

  it.live("a transaction that wrote nothing has no id: its cut COMMIT does not matter, the value stands", () =>
    Effect.gen(function*() {
      const operation = `commit.read.${unique("read")}`
      const before = yield* verifications(operation, "no_writes")
      let runs = 0
      const cut = proxy.cutOnCommit("after")
      const count = yield* Db.transaction(async (tx) => {
        runs++
        return tx.purchaseOrder.count()
      }, { operation }).pipe(Effect.provide(captureLogs().layer))
      yield* Effect.promise(() => cutDone(cut))
      expect(typeof count).toBe("number")
      expect(runs).toBe(1)
      expect((yield* verifications(operation, "no_writes")) - before).toBe(1)
    }).pipe(Effect.provide(layer())))

  it.live("when txid_status cannot be asked (no new connection gets through), the ambiguous error stays and nothing runs again", () =>
    Effect.gen(function*() {
      const reference = unique("unknown")
      const operation = `commit.unknown.${reference}`
      const before = yield* verifications(operation, "unknown")
      // The pool's only connection is open; every new one is refused.
      yield* Db.query((c) => c.$queryRaw`SELECT 1`)
      proxy.refuse(true)
      let runs = 0
      const cut = proxy.cutOnCommit("after")
      const started = Date.now()
      const result = yield* Effect.result(Db.transaction(async (tx) => {
        runs++
        return tx.purchaseOrder.create({ data: { reference, totalCents: 1 } })
      }, { operation })).pipe(Effect.provide(captureLogs().layer), Effect.ensuring(Effect.sync(() => proxy.refuse(false))))
      yield* Effect.promise(() => cutDone(cut))
      const error: DatabaseError | undefined = Result.isFailure(result) ? result.failure : undefined
      console.info(`[core] commit outcome unknown after ${Date.now() - started} ms: ${error?._tag}: ${error?.message}`)
      expect(error?.safety).toBe("ambiguous")
      expect(error?.message).toMatch(/commit outcome unknown/)
      expect(runs).toBe(1)
      // It did commit: exactly why it must not run again.
      expect(yield* rowsWith(reference)).toBe(1)
      expect((yield* verifications(operation, "unknown")) - before).toBe(1)
    }).pipe(Effect.provide(layer({ attemptTimeoutMs: 1000 }, 1))))

  it.live("a connection lost before COMMIT: nothing was committed, the function runs again", () =>
    Effect.gen(function*() {
      const reference = unique("lost")
      let runs = 0
      const value = yield* Db.transaction(async (tx) => {
        runs++
        const order = await tx.purchaseOrder.create({ data: { reference, totalCents: 1 } })
        if (runs === 1) {
          proxy.cutAll()
          await tx.purchaseOrder.count()
        }
        return order.id
      }, { operation: `commit.lost.${reference}` }).pipe(Effect.provide(captureLogs().layer))
      expect(runs).toBe(2)
      expect(yield* rowsWith(reference)).toBe(1)
      expect(typeof value).toBe("string")
    }).pipe(Effect.provide(layer())))
})

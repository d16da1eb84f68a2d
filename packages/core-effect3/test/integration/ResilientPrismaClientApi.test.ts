// The Promise adapter is the client's own API: one test per row of the
// compatibility table in packages/core-effect3/README.md, each with its type
// (expectTypeOf) and its behaviour against a real PostgreSQL.
import { classificationOf, createResilientPrisma, Metrics, QueryError, TimeoutError } from "@prisma-resilience/core-effect3"
import { PrismaPg } from "@prisma/adapter-pg"
import { makeTypedQueryFactory, type TypedSql } from "@prisma/client/runtime/client"
import { Effect, Metric, MetricLabel } from "effect"
import { afterAll, describe, expect, expectTypeOf, inject, it } from "vitest"
import { makePrismaClient, type OrderLine, Prisma, PrismaClient, poolStats, type PurchaseOrder } from "../fixture/client.js"
import { pool, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")
const retry = { delaysMs: [50, 100], attemptTimeoutMs: 1000, warmupWaitMs: 1500 }
const unique = () => `api-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
const attempts = (operation: string, outcome: string) =>
  Effect.runSync(
    Metric.value(
      Metrics.queryAttempts.pipe(
        Metric.taggedWithLabels(
          Object.entries({ operation, attempt: "1", outcome }).map(([k, v]) => MetricLabel.make(k, v))
        )
      )
    )
  ).count

// No poolStats here: it would pin the client type to the base PrismaClient.
const base = { url, warmup, pool, retry }
const db = createResilientPrisma({ ...base, poolStats, client: (settings) => makePrismaClient(url, settings) })
const closing: Array<{ $disconnect: () => Promise<void> }> = [db]
afterAll(async () => {
  await Promise.all(closing.map((c) => c.$disconnect()))
})

// What `prisma generate --sql` writes for prisma/sql/totalOf.sql, by hand:
// the generator needs the schema engine, which this machine cannot download.
const totalOf = makeTypedQueryFactory(
  "SELECT total_cents AS total FROM purchase_order WHERE reference = $1"
) as (reference: string) => TypedSql<[string], { total: number }>

const rejection = (p: PromiseLike<unknown>) => Promise.resolve(p).then(() => expect.fail("expected a rejection"), (e: unknown) => e)

describe("createResilientPrisma: the client's own API", () => {
  it("$connect resolves once warm-up has finished", async () => {
    expectTypeOf(db.$connect).returns.resolves.toEqualTypeOf<void>()
    await expect(db.$connect()).resolves.toBeUndefined()
  })

  it("model calls of every kind keep their types: createMany(AndReturn), upsert, updateMany, aggregate, groupBy, deleteMany", async () => {
    const [a, b] = [unique(), unique()]
    const many = await db.purchaseOrder.createMany({ data: [{ reference: a, totalCents: 1 }] })
    expectTypeOf(many).toEqualTypeOf<Prisma.BatchPayload>()
    expect(many.count).toBe(1)
    const returned = await db.purchaseOrder.createManyAndReturn({ data: [{ reference: b, totalCents: 2 }] })
    expectTypeOf(returned).toEqualTypeOf<Array<PurchaseOrder>>()
    expect(returned[0]?.reference).toBe(b)
    const upserted = await db.purchaseOrder.upsert({
      where: { reference: a },
      create: { reference: a, totalCents: 0 },
      update: { totalCents: 5 }
    })
    expect(upserted.totalCents).toBe(5)
    const updated = await db.purchaseOrder.updateMany({ where: { reference: { in: [a, b] } }, data: { note: "n" } })
    expect(updated.count).toBe(2)
    const sum = await db.purchaseOrder.aggregate({ where: { reference: { in: [a, b] } }, _sum: { totalCents: true } })
    expectTypeOf(sum._sum.totalCents).toEqualTypeOf<number | null>()
    expect(sum._sum.totalCents).toBe(7)
    const groups = await db.purchaseOrder.groupBy({ by: ["note"], where: { reference: { in: [a, b] } }, _count: true })
    expect(groups).toEqual([{ note: "n", _count: 2 }])
    const deleted = await db.purchaseOrder.deleteMany({ where: { reference: { in: [a, b] } } })
    expect(deleted.count).toBe(2)
  })

  it("batch $transaction([…]) runs the calls as one transaction, with their tuple type", async () => {
    const reference = unique()
    const result = await db.$transaction([
      db.purchaseOrder.create({ data: { reference, totalCents: 1 } }),
      db.purchaseOrder.count({ where: { reference } }),
      db.$queryRaw<Array<{ one: number }>>`SELECT 1::int AS one`
    ])
    expectTypeOf(result).toEqualTypeOf<[PurchaseOrder, number, Array<{ one: number }>]>()
    expect(result[0].reference).toBe(reference)
    // The count ran inside the same transaction, after the create.
    expect(result[1]).toBe(1)
    expect(result[2]).toEqual([{ one: 1 }])
  })

  it("batch $transaction([…]) is atomic: a P2002 in the second call rolls back the first, as Prisma's own error", async () => {
    const taken = unique()
    await db.purchaseOrder.create({ data: { reference: taken, totalCents: 1 } })
    const fresh = unique()
    const error = await rejection(db.$transaction([
      db.purchaseOrder.create({ data: { reference: fresh, totalCents: 1 } }),
      db.purchaseOrder.create({ data: { reference: taken, totalCents: 1 } })
    ]))
    expect(error).toBeInstanceOf(Prisma.PrismaClientKnownRequestError)
    expect(error).toMatchObject({ code: "P2002" })
    expect(classificationOf(error)).toBeInstanceOf(QueryError)
    expect(await db.purchaseOrder.count({ where: { reference: fresh } })).toBe(0)
  })

  it("batch $transaction rejects a promise that is not this client's call, sending nothing", async () => {
    const error = await rejection(db.$transaction([Promise.resolve(1) as never]))
    expect(error).toBeInstanceOf(TypeError)
  })

  it("interactive $transaction takes Prisma's isolationLevel and maxWait", async () => {
    const level = await db.$transaction(
      async (tx) => {
        const rows = await tx.$queryRaw<Array<{ level: string }>>`SELECT current_setting('transaction_isolation') AS level`
        return rows[0]!.level
      },
      { isolationLevel: Prisma.TransactionIsolationLevel.Serializable, maxWait: 2000 }
    )
    expect(level).toBe("serializable")
  })

  it("interactive $transaction's timeout bounds the attempt: longer than the layer's attempt timeout works, shorter cuts it", async () => {
    // retry.attemptTimeoutMs is 1000 here: without `timeout`, a 1.5 s transaction would time out.
    const slow = (tx: { $queryRaw: PrismaClient["$queryRaw"] }) => tx.$queryRaw`SELECT pg_sleep(1.5)::text`.then(() => "done")
    const once = { retry: { delaysMs: [] } }
    expect(await rejection(db.$transaction(slow, once))).toBeInstanceOf(TimeoutError)
    await expect(db.$transaction(slow, { timeout: 4000 })).resolves.toBe("done")
    const cut = await rejection(db.$transaction(slow, { ...once, timeout: 300 }))
    expect(cut).toBeInstanceOf(TimeoutError)
    // a timeout longer than the request's budget does not stretch the budget
    const started = performance.now()
    const overBudget = await rejection(db.$transaction(slow, { retry: { delaysMs: [], requestBudgetMs: 800 }, timeout: 4000 }))
    expect(overBudget).toBeInstanceOf(TimeoutError)
    expect(performance.now() - started).toBeLessThan(800 + 300)
  })

  it("$executeRaw, $queryRawUnsafe and $executeRawUnsafe run through the layer, each one named request", async () => {
    const reference = unique()
    await db.purchaseOrder.create({ data: { reference, totalCents: 1 } })
    const before = attempts("$executeRaw", "success")
    const changed = await db.$executeRaw`UPDATE purchase_order SET total_cents = 2 WHERE reference = ${reference}`
    expectTypeOf(changed).toEqualTypeOf<number>()
    expect(changed).toBe(1)
    expect(attempts("$executeRaw", "success") - before).toBe(1)
    const rows = await db.$queryRawUnsafe<Array<{ total: number }>>(
      "SELECT total_cents AS total FROM purchase_order WHERE reference = $1",
      reference
    )
    expect(rows).toEqual([{ total: 2 }])
    const deleted = await db.$executeRawUnsafe("DELETE FROM purchase_order WHERE reference = $1", reference)
    expect(deleted).toBe(1)
  })

  it("$queryRawTyped (TypedSQL) runs through the layer as one named read, with its row type", async () => {
    const reference = unique()
    await db.purchaseOrder.create({ data: { reference, totalCents: 3 } })
    const before = attempts("$queryRawTyped", "success")
    const rows = await db.$queryRawTyped(totalOf(reference))
    expectTypeOf(rows).toEqualTypeOf<Array<{ total: number }>>()
    expect(rows).toEqual([{ total: 3 }])
    expect(attempts("$queryRawTyped", "success") - before).toBe(1)
    // a failing one rejects with Prisma's own error, classified, not retried
    const missing = makeTypedQueryFactory("SELECT x FROM no_such_table") as () => TypedSql<[], { x: number }>
    const error = await rejection(db.$queryRawTyped(missing()))
    expect(error).toBeInstanceOf(Prisma.PrismaClientKnownRequestError)
    expect(classificationOf(error)).toMatchObject({ _tag: "QueryError", attempt: 1 })
    expect(attempts("$queryRawTyped", "success") - before).toBe(1)
  })

  it("the fluent relation API: findUnique(…).lines() is one request through the layer", async () => {
    const reference = unique()
    const order = await db.purchaseOrder.create({
      data: { reference, totalCents: 1, lines: { create: [{ sku: "a" }, { sku: "b" }] } }
    })
    const before = attempts("purchaseOrder.findUnique", "success")
    const lines = await db.purchaseOrder.findUnique({ where: { id: order.id } }).lines({ orderBy: { sku: "asc" } })
    const typed: Array<OrderLine> | null = lines
    const _check: typeof lines = null as Array<OrderLine> | null
    void typed, _check
    expect(lines?.map((l) => l.sku)).toEqual(["a", "b"])
    expect(attempts("purchaseOrder.findUnique", "success") - before).toBe(1)
    const owner = await db.orderLine.findFirst({ where: { orderId: order.id } }).order()
    expect(owner?.reference).toBe(reference)
  })

  it("$extends after creation: result and query extensions apply to calls through the layer", async () => {
    let seen = 0
    const ext = db.$extends({
      result: { purchaseOrder: { label: { needs: { reference: true }, compute: (o) => `#${o.reference}` } } },
      query: {
        $allOperations({ args, query }) {
          seen += 1
          return query(args)
        }
      }
    })
    const reference = unique()
    await ext.purchaseOrder.create({ data: { reference, totalCents: 1 } })
    const found = await ext.purchaseOrder.findUnique({ where: { reference } })
    expectTypeOf(found).toMatchTypeOf<{ label: string } | null>()
    expect(found?.label).toBe(`#${reference}`)
    expect(seen).toBe(2)
    // A second $extends view over the same client builds the extension once per client.
    expect(await ext.purchaseOrder.count({ where: { reference } })).toBe(1)
  })

  it("$extends before creation (in the factory): the adapter has the extended client's types", async () => {
    const extendedDb = createResilientPrisma({
      ...base,
      client: (settings) =>
        makePrismaClient(url, settings).$extends({
          model: { purchaseOrder: { byReference: (reference: string) => ({ reference }) } },
          result: { purchaseOrder: { cents: { needs: { totalCents: true }, compute: (o) => o.totalCents } } }
        })
    })
    closing.push(extendedDb)
    const reference = unique()
    const created = await extendedDb.purchaseOrder.create({ data: { reference, totalCents: 7 } })
    expectTypeOf(created.cents).toEqualTypeOf<number>()
    expect(created.cents).toBe(7)
  })

  it("$on: a query event listener registered on the adapter hears the layer's client", async () => {
    const logged = createResilientPrisma({
      ...base,
      client: (settings) =>
        new PrismaClient({ adapter: new PrismaPg({ ...settings }), log: [{ emit: "event", level: "query" }] })
    })
    closing.push(logged)
    const queries: Array<string> = []
    logged.$on("query", (event) => {
      expectTypeOf(event).toEqualTypeOf<Prisma.QueryEvent>()
      queries.push(event.query)
    })
    await logged.purchaseOrder.count()
    expect(queries.some((q) => q.includes("purchase_order"))).toBe(true)
  })
})

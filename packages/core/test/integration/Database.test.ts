import { Database, health, Metrics } from "@prisma-resilience/core"
import type { PrismaClient, PurchaseOrder } from "../../../core-effect3/test/fixture/client.js"
import { expect, expectTypeOf, layer } from "../support/vitest.js"
import { Effect, Metric, References, Result, Tracer } from "effect"
import { inject } from "vitest"
import { captureLogs, databaseLayer, Db, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")

const attemptsCount = (operation: string, attempt: number, outcome: string) =>
  Metric.value(
    Metrics.queryAttempts.pipe(
      Metric.withAttributes([
        ["operation", operation],
        ["attempt", String(attempt)],
        ["outcome", outcome]
      ])
    )
  ).pipe(Effect.map((state) => state.count))

const unique = () => `it-${process.pid}-${Math.random().toString(36).slice(2, 10)}`

layer(databaseLayer(url), { excludeTestServices: true })("Database against a real PostgreSQL", (it) => {
  it.effect("query: result type inferred from the Prisma call, operation recorded, one successful attempt counted", () =>
    Effect.gen(function*() {
      const db = yield* Database
      const reference = unique()
      const before = yield* attemptsCount("purchaseOrder.create", 1, "success")
      const created = yield* db.query((c: PrismaClient) =>
        c.purchaseOrder.create({ data: { reference, totalCents: 1250 } })
      )
      expectTypeOf(created).toEqualTypeOf<PurchaseOrder>()
      const found = yield* Db.query((c) => c.purchaseOrder.findUnique({ where: { id: created.id } }))
      expectTypeOf(found).toEqualTypeOf<PurchaseOrder | null>()
      expect(found?.reference).toBe(reference)
      expect((yield* attemptsCount("purchaseOrder.create", 1, "success")) - before).toBe(1)
      const histogram = yield* Metric.value(
        Metrics.queryDuration.pipe(Metric.withAttributes([["operation", "purchaseOrder.findUnique"]]))
      )
      expect(histogram.count).toBeGreaterThanOrEqual(1)
    }))

  it.effect("a unique violation is a QueryError P2002 after exactly one attempt, logged at debug only", () =>
    Effect.gen(function*() {
      const reference = unique()
      yield* Db.query((c) => c.purchaseOrder.create({ data: { reference, totalCents: 1 } }))
      const before = yield* attemptsCount("purchaseOrder.create", 2, "QueryError")
      const logs = captureLogs()
      const result = yield* Db.query((c) => c.purchaseOrder.create({ data: { reference, totalCents: 1 } })).pipe(
        Effect.result,
        Effect.provide(logs.layer),
        Effect.provideService(References.MinimumLogLevel, "Debug")
      )
      expect(Result.isFailure(result) && result.failure._tag).toBe("QueryError")
      expect(Result.isFailure(result) && result.failure.code).toBe("P2002")
      expect(Result.isFailure(result) && result.failure.attempt).toBe(1)
      expect((yield* attemptsCount("purchaseOrder.create", 2, "QueryError")) - before).toBe(0)
      expect(logs.lines).toEqual([
        expect.stringMatching(/^purchaseOrder\.create attempt 1\/3: QueryError \(P2002\): .*, not retryable$/)
      ])
      // A working database's answer (409 over HTTP) is not a failed attempt to warn about.
      expect(logs.levels).toEqual(["DEBUG"])
    }))

  it.effect("50 concurrent serializable read-increment-write transactions end at exactly 50, after real conflicts", () =>
    Effect.gen(function*() {
      const reference = unique()
      const row = yield* Db.query((c) => c.purchaseOrder.create({ data: { reference, totalCents: 0 } }))
      const retryLabel: Array<[string, string]> = [["operation", "counter.increment"]]
      const retriesBefore = yield* Metric.value(Metrics.queryRetries.pipe(Metric.withAttributes([
        ...retryLabel,
        ["error", "TransactionError"]
      ])))
      const logs = captureLogs()
      const increment = Db.transaction(
        async (tx) => {
          expectTypeOf(tx.purchaseOrder.findUniqueOrThrow).toBeFunction()
          const current = await tx.purchaseOrder.findUniqueOrThrow({ where: { id: row.id } })
          await tx.purchaseOrder.update({ where: { id: row.id }, data: { totalCents: current.totalCents + 1 } })
        },
        {
          operation: "counter.increment",
          isolationLevel: "Serializable",
          // Fifty writers on one row need more than the default two retries.
          retry: { delaysMs: Array.from({ length: 40 }, (_, i) => 5 + (i % 8) * 5), jitter: true, requestBudgetMs: 60_000 }
        }
      )
      yield* Effect.all(Array.from({ length: 50 }, () => increment), { concurrency: 50, discard: true }).pipe(
        Effect.provide(logs.layer)
      )
      const final = yield* Db.query((c) => c.purchaseOrder.findUniqueOrThrow({ where: { id: row.id } }))
      expect(final.totalCents).toBe(50)
      const retriesAfter = yield* Metric.value(Metrics.queryRetries.pipe(Metric.withAttributes([
        ...retryLabel,
        ["error", "TransactionError"]
      ])))
      const conflicts = retriesAfter.count - retriesBefore.count
      console.info(`[core] 50 serializable increments: ${conflicts} transaction conflicts retried`)
      expect(conflicts).toBeGreaterThan(0)
      expect(logs.lines.some((l) => /^counter\.increment attempt \d+\/41 failed: TransactionError/.test(l))).toBe(true)
    }))

  it.effect("with a tracer installed: a span per query and per attempt, named by operation", () =>
    Effect.gen(function*() {
      const base = yield* Effect.tracer
      const spans: Array<{ name: string; attributes: Record<string, unknown> }> = []
      const tracer = Tracer.make({
        span: (options) => {
          const span = base.span(options)
          const entry = { name: options.name, attributes: {} as Record<string, unknown> }
          spans.push(entry)
          const attribute = span.attribute.bind(span)
          span.attribute = (key, value) => {
            entry.attributes[key] = value
            attribute(key, value)
          }
          return span
        },
        context: base.context
      })
      yield* Db.query((c) => c.purchaseOrder.findMany({ take: 1 })).pipe(Effect.withTracer(tracer))
      expect(spans.map((s) => s.name)).toEqual(["Database.query", "Database.attempt"])
      expect(spans[1]!.attributes).toMatchObject({ "db.operation": "purchaseOrder.findMany", attempt: 1 })
    }))

  it.effect("health passes with the probe latency and the warm-up duration", () =>
    Effect.gen(function*() {
      const report = yield* health
      expect(report.status).toBe("pass")
      expect(report.latencyMs).toBeGreaterThan(0)
      // A real connect and probe take time, never more than the warm-up's timeout, and the gauge says the same.
      expect(report.warmupMs).toBeGreaterThan(0)
      expect(report.warmupMs).toBeLessThan(warmup.timeoutMs)
      const gauge = yield* Metric.value(Metric.withAttributes(Metrics.warmupDuration, [["database", "default"]]))
      expect(gauge.value).toBeCloseTo(report.warmupMs / 1000, 3)
    }))

  it.effect("pool gauges follow the pool", () =>
    Effect.gen(function*() {
      const db = yield* Database
      yield* Db.query((c) => c.$queryRaw`SELECT 1`)
      const stats = yield* db.poolStats
      expect(stats?.totalCount).toBeGreaterThanOrEqual(1)
      yield* Effect.sleep("1100 millis")
      expect((yield* Metric.value(Metric.withAttributes(Metrics.poolTotal, [["database", "default"]]))).value).toBeGreaterThanOrEqual(1)
    }))
})

import {
  Database,
  type DatabaseService,
  health,
  type LayerOptions,
  Metrics,
  type PoolSettings,
  type PrismaClientLike,
  RetryPolicy,
  type WarmupConfig
} from "@prisma-resilience/core"
import { describe, expect, it } from "./support/vitest.js"
import { Clock, ConfigProvider, Effect, Result, Exit, Fiber, Layer, Logger, Metric, Option, Scope } from "effect"
import * as TestClock from "effect/testing/TestClock"

const warmup: WarmupConfig = {
  timeoutMs: 10_000,
  attemptTimeoutMs: 1000,
  backoffMs: 100,
  backoffMaxMs: 1000,
  healthTimeoutMs: 500,
  shutdownTimeoutMs: 1000
}
const pool: PoolSettings = { max: 2, connectionTimeoutMillis: 500, idleTimeoutMillis: 1000 }

const refused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })

/**
 * A stand-in client (no database involved: this file tests warm-up timing on
 * the TestClock). Its connect fails `failConnects` times, then works.
 */
const fakeClients = (failConnects: number, connectError: () => Error = refused) => {
  const built: Array<{ connected: boolean; disconnected: boolean }> = []
  let connects = 0
  const client = (_: PoolSettings): PrismaClientLike => {
    const state = { connected: false, disconnected: false }
    built.push(state)
    return {
      $connect: () => {
        connects++
        if (connects <= failConnects) return Promise.reject(connectError())
        state.connected = true
        return Promise.resolve()
      },
      $disconnect: () => {
        state.disconnected = true
        return Promise.resolve()
      },
      $queryRaw: () => Promise.resolve([{ "?column?": 1 }]),
      $transaction: () => Promise.reject(new Error("not used"))
    }
  }
  return { built, client, connects: () => connects }
}

const options = (client: LayerOptions<PrismaClientLike>["client"]): LayerOptions<PrismaClientLike> => ({
  client,
  warmup,
  pool,
  retry: RetryPolicy.defaults
})

const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => {
    lines.push(Array.isArray(message) ? message.join(" ") : String(message))
  })
  return { lines, layer: Logger.layer([logger]) }
}

describe("Database.layer warm-up", () => {
  // Backoff 100, 200, 400, 800, 1000 ms: the sixth attempt starts at 2500 ms.
  it.effect("a health check requested at t=0 completes only after a 2.5 s warm-up, and passes then", () =>
    Effect.gen(function*() {
      const fake = fakeClients(5)
      const fiber = yield* health.pipe(Effect.provide(Database.layer(options(fake.client))), Effect.forkChild)
      yield* TestClock.adjust(2499)
      expect(Option.isNone(yield* Effect.sync(() => Option.fromUndefinedOr(fiber.pollUnsafe())))).toBe(true)
      yield* TestClock.adjust(1)
      const report = yield* Fiber.join(fiber)
      expect(report.status).toBe("pass")
      expect(report.warmupMs).toBe(2500)
      expect(report.warmupAttempts).toBe(6)
    }))

  it.effect("rebuilds the client after a failed connect and disconnects the failed ones", () =>
    Effect.gen(function*() {
      const fake = fakeClients(2)
      const scope = yield* Scope.make()
      const fiber = yield* Layer.buildWithScope(Database.layer(options(fake.client)), scope).pipe(Effect.forkChild)
      yield* TestClock.adjust(1000)
      yield* Fiber.join(fiber)
      expect(fake.built.length).toBe(3)
      expect(fake.built.map((c) => c.disconnected)).toEqual([true, true, false])
      yield* Scope.close(scope, Exit.void)
      expect(fake.built[2]!.disconnected).toBe(true)
    }))

  it.effect("logs start and completion with the duration, records the metrics and sets db_ready", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const fake = fakeClients(1)
      const scope = yield* Scope.make()
      const fiber = yield* Layer.buildWithScope(Database.layer(options(fake.client)), scope).pipe(
        Effect.provide(logs.layer),
        Effect.forkChild
      )
      yield* TestClock.adjust(100)
      yield* Fiber.join(fiber)
      expect(logs.lines.some((l) => l.startsWith("Warmup started"))).toBe(true)
      expect(logs.lines).toContain("Warmup complete in 100 ms (2 attempt(s))")
      const labelled = <M extends Metric.Gauge<number>>(metric: M) => Metric.withAttributes(metric, [["database", "default"]])
      expect((yield* Metric.value(labelled(Metrics.warmupDuration))).value).toBe(0.1)
      expect((yield* Metric.value(labelled(Metrics.ready))).value).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect((yield* Metric.value(labelled(Metrics.ready))).value).toBe(0)
    }))

  it.effect("keeps the gauges of two databases apart, labelled with their tags' keys", () =>
    Effect.gen(function*() {
      class Orders extends Database.Tag("WarmupTest/Orders")<Orders, PrismaClientLike>() {}
      class Audit extends Database.Tag("WarmupTest/Audit")<Audit, PrismaClientLike>() {}
      const ready = (name: string) => Metric.value(Metric.withAttributes(Metrics.ready, [["database", name]]))
      const ordersScope = yield* Scope.make()
      const auditScope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Orders.layer(options(fakeClients(0).client)), ordersScope)
      yield* Layer.buildWithScope(Audit.layer(options(fakeClients(0).client)), auditScope)
      expect((yield* ready("WarmupTest/Orders")).value).toBe(1)
      expect((yield* ready("WarmupTest/Audit")).value).toBe(1)
      expect(yield* Orders.query(($) => $.$queryRaw`SELECT 1`).pipe(Effect.provide(context))).toEqual([{ "?column?": 1 }])
      yield* Scope.close(ordersScope, Exit.void)
      expect((yield* ready("WarmupTest/Orders")).value).toBe(0)
      expect((yield* ready("WarmupTest/Audit")).value).toBe(1)
      yield* Scope.close(auditScope, Exit.void)
    }))

  it.effect("fails with a typed WarmupError carrying the last cause once the warm-up timeout passes", () =>
    Effect.gen(function*() {
      const fake = fakeClients(Infinity)
      const fiber = yield* Layer.build(Database.layer(options(fake.client))).pipe(Effect.scoped, Effect.result, Effect.forkChild)
      yield* TestClock.adjust(warmup.timeoutMs)
      const result = yield* Fiber.join(fiber)
      expect(Result.isFailure(result)).toBe(true)
      if (Result.isFailure(result)) {
        const error = result.failure
        expect(error._tag).toBe("WarmupError")
        if (error._tag === "WarmupError") {
          expect(error.elapsedMs).toBe(warmup.timeoutMs)
          expect(error.cause?._tag).toBe("ConnectionError")
          expect(error.cause?.code).toBe("ECONNREFUSED")
          expect(error.message).toContain("timed out after 10000 ms")
        }
      }
      expect(yield* Clock.currentTimeMillis).toBe(warmup.timeoutMs)
    }))

  it.effect("a non-retryable failure (authentication) ends warm-up at once", () =>
    Effect.gen(function*() {
      const auth = () => Object.assign(new Error("password authentication failed for user \"app\""), { code: "28P01" })
      const fake = fakeClients(Infinity, auth)
      const result = yield* Layer.build(Database.layer(options(fake.client))).pipe(Effect.scoped, Effect.result)
      expect(Result.isFailure(result) && result.failure._tag).toBe("WarmupError")
      expect(fake.connects()).toBe(1)
    }))

  it.effect("refuses to start with a retry policy that can exceed the request budget", () =>
    Effect.gen(function*() {
      const fake = fakeClients(0)
      const result = yield* Layer.build(
        Database.layer({ ...options(fake.client), retry: { ...RetryPolicy.defaults, attemptTimeoutMs: 4000 } })
      ).pipe(Effect.scoped, Effect.result)
      expect(Result.isFailure(result) && result.failure._tag).toBe("RetryConfigError")
      expect(fake.built.length).toBe(0)
    }))

  it.effect("layerConfig without DATABASE_URL or `url` fails at once, before building any client", () =>
    Effect.gen(function*() {
      const fake = fakeClients(0)
      const result = yield* Layer.build(Database.layerConfig({ client: fake.client })).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord({})),
        Effect.scoped,
        Effect.result
      )
      expect(Result.isFailure(result) && result.failure._tag).toBe("RetryConfigError")
      expect(Result.isFailure(result) && (result.failure as Error).message).toMatch(/DATABASE_URL is not set/)
      expect(fake.built.length).toBe(0)
      // With it, the same layer warms up and hands it to the factory.
      const withUrl = yield* Layer.build(Database.layerConfig({ client: fake.client })).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnvRecord(Object.fromEntries([["DATABASE_URL", "postgresql://app@127.0.0.1:5432/app"]]))),
        Effect.scoped,
        Effect.result
      )
      expect(Result.isSuccess(withUrl)).toBe(true)
      expect(fake.built.length).toBe(1)
    }))

  it.effect("health fails shutting_down once shutdown began", () =>
    Effect.gen(function*() {
      const fake = fakeClients(0)
      const result = yield* Effect.gen(function*() {
        const db: DatabaseService = yield* Database
        yield* db.beginShutdown
        return yield* Effect.result(health)
      }).pipe(Effect.provide(Database.layer(options(fake.client))))
      expect(Result.isFailure(result) && result.failure.reason).toBe("shutting_down")
    }))
})

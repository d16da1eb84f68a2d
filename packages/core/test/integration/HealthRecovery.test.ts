// Health has two sides: it never passes while queries fail, and it passes
// again once they would succeed, with no other traffic. Behind a readiness
// gate (Kubernetes, a load balancer that routes only to instances whose
// health passes) an instance whose health fails gets no query at all, so
// health's own probe must close the breaker and end a spell of failed
// queries (real PostgreSQL, stopped and started; a real lock). The same
// promises through every binding, a missing table and the Promise adapter's
// breaker case included: behaviour/suite/health.ts.
import { Database, health } from "@prisma-resilience/core"
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import { describe, expect, it } from "../support/vitest.js"
import { Clock, Duration, Effect, Exit, Layer, References, Result, Scope } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll } from "vitest"
import { createSchema, type PrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { databaseLayer, Db } from "../support/helpers.js"

const clusters: Array<Cluster> = []
afterAll(async () => {
  await Promise.allSettled(clusters.map((c) => c.destroy()))
})
const ownCluster = Effect.promise(async () => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "core-health-")) })
  clusters.push(cluster)
  await createSchema(cluster.url)
  return cluster
})

const RESET_MS = 1000
const HEALTH_TIMEOUT_MS = 1000
const POLL_MS = 200

const reason = Effect.map(Effect.result(health), (result) => (Result.isFailure(result) ? result.failure.reason : "pass"))

/**
 * Polls health every POLL_MS (the only traffic) until it passes or `limitMs`
 * runs out; returns the reasons seen and when it passed, in ms from the start.
 */
const pollHealth = (limitMs: number) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const seen: Array<string> = []
    for (;;) {
      const now = yield* Clock.currentTimeMillis
      const r = yield* reason
      if (seen.at(-1) !== r) seen.push(r)
      if (r === "pass") return { seen, passedAfterMs: now - started }
      if (now - started > limitMs) return { seen, passedAfterMs: undefined }
      yield* Effect.sleep(Duration.millis(POLL_MS))
    }
  })

/** Health's reasons over `ms` of polling, with no other traffic. */
const reasonsFor = (ms: number) =>
  Effect.gen(function*() {
    const reasons = new Set<string>()
    const until = (yield* Clock.currentTimeMillis) + ms
    while ((yield* Clock.currentTimeMillis) < until) {
      reasons.add(yield* reason)
      yield* Effect.sleep(Duration.millis(POLL_MS))
    }
    return [...reasons]
  })

const layerFor = (cluster: Cluster, failureThreshold: number) =>
  databaseLayer(cluster.url, {
    retry: { delaysMs: [100, 100], attemptTimeoutMs: 1500, requestBudgetMs: 9000, warmupWaitMs: 1500 },
    warmup: { healthTimeoutMs: HEALTH_TIMEOUT_MS },
    circuitBreaker: { failureThreshold, resetTimeoutMs: RESET_MS, resetJitter: 0 }
  })

/** Builds the layer into `scope`, so the test can stop and start the cluster under it. */
const build = <E>(layer: Layer.Layer<Database, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    return { context, close: Scope.close(scope, Exit.void) }
  })

const quietly = Effect.provideService(References.MinimumLogLevel, "Error")

describe("health recovers by itself once queries would succeed", () => {
  it.live("breaker open after an outage: health closes it with its own probe, no query sent", () =>
    Effect.gen(function*() {
      const cluster = yield* ownCluster
      const { close, context } = yield* build(layerFor(cluster, 2))
      const run = <A, E>(self: Effect.Effect<A, E, Database>) => Effect.provide(self, context)
      yield* Effect.promise(() => cluster.stop("fast"))
      // Two failed requests open the breaker (threshold 2).
      for (let i = 0; i < 2; i++) {
        const failed = yield* run(Effect.result(Db.query((c: PrismaClient) => c.purchaseOrder.count())))
        expect(Result.isFailure(failed)).toBe(true)
      }
      expect(yield* run(reason)).toBe("circuit_open")
      yield* Effect.promise(() => cluster.start())
      // Only health from here on: it must pass within one reset interval plus one probe.
      const { passedAfterMs, seen } = yield* run(pollHealth(RESET_MS + HEALTH_TIMEOUT_MS + 4000))
      console.info(`[core] breaker open → health pass after ${passedAfterMs} ms (reasons ${seen.join(" → ")})`)
      expect(passedAfterMs, `health reasons: ${seen.join(" → ")}`).toBeDefined()
      expect(passedAfterMs!).toBeLessThanOrEqual(RESET_MS + HEALTH_TIMEOUT_MS + POLL_MS + 1000)
      expect((yield* run(Effect.flatMap(Database, (db) => db.circuit))).state).toBe("closed")
      // And queries do succeed now.
      expect(yield* run(Db.query((c: PrismaClient) => c.purchaseOrder.count()))).toBeTypeOf("number")
      yield* close
    }).pipe(quietly), 60_000)

  it.live("degraded after failed queries (breaker closed): health's probe ends the spell", () =>
    Effect.gen(function*() {
      const cluster = yield* ownCluster
      const { close, context } = yield* build(layerFor(cluster, 0))
      const run = <A, E>(self: Effect.Effect<A, E, Database>) => Effect.provide(self, context)
      yield* Effect.promise(() => cluster.stop("fast"))
      // One request, three failed attempts: degraded, the breaker stays closed (disabled).
      const failed = yield* run(Effect.result(Db.query((c: PrismaClient) => c.purchaseOrder.count())))
      expect(Result.isFailure(failed) && failed.failure._tag).toBe("ConnectionError")
      yield* Effect.promise(() => cluster.start())
      // The probe no longer fails once the server is back; the spell of
      // connection failures is what SELECT 1 sees too, so it ends at once.
      const { passedAfterMs, seen } = yield* run(pollHealth(5000))
      console.info(`[core] degraded → health pass after ${passedAfterMs} ms (reasons ${seen.join(" → ")})`)
      expect(passedAfterMs, `health reasons: ${seen.join(" → ")}`).toBeDefined()
      expect(passedAfterMs!).toBeLessThanOrEqual(HEALTH_TIMEOUT_MS + POLL_MS + 1000)
      yield* close
    }).pipe(quietly), 60_000)

  it.live("a lock SELECT 1 cannot see: health fails while it is held, with no traffic, and passes once it is released", () =>
    Effect.gen(function*() {
      const cluster = yield* ownCluster
      const { close, context } = yield* build(layerFor(cluster, 0))
      const run = <A, E>(self: Effect.Effect<A, E, Database>) => Effect.provide(self, context)
      const locker = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 5_000 })
      // A failed test leaves it connected when the cluster goes: no stray 'error'.
      locker.on("error", () => {})
      yield* Effect.promise(() => locker.connect())
      yield* Effect.promise(() => locker.query("BEGIN"))
      yield* Effect.promise(() => locker.query("LOCK TABLE purchase_order IN ACCESS EXCLUSIVE MODE"))
      // One request whose three attempts time out on the lock: degraded.
      const failed = yield* run(Effect.result(Db.query((c: PrismaClient) => c.purchaseOrder.findMany({ take: 1 }))))
      expect(Result.isFailure(failed) && failed.failure._tag).toBe("TimeoutError")
      // With the lock still held and only health polling for well over a
      // breaker reset, health never passes: SELECT 1 would.
      const during = yield* run(reasonsFor(3 * RESET_MS))
      expect(during).toEqual(["degraded"])
      yield* Effect.promise(() => locker.query("COMMIT"))
      const { passedAfterMs, seen } = yield* run(pollHealth(4000))
      console.info(`[core] lock released → health pass after ${passedAfterMs} ms (reasons ${seen.join(" → ")})`)
      expect(passedAfterMs, `health reasons: ${seen.join(" → ")}`).toBeDefined()
      yield* Effect.promise(() => locker.end())
      yield* close
    }).pipe(quietly), 60_000)
})

// Faults on servers these tests own: stopped, started late, restarted.
import { Database, type DatabaseService, health, RetryPolicy, WarmupError } from "@prisma-resilience/core"
import { type Cluster, createCluster, startCluster } from "@prisma-resilience/devdb"
import { createSchema } from "../../../core-effect3/test/fixture/client.js"
import { describe, expect, it } from "../support/vitest.js"
import { Cause, Context, Effect, Exit, Fiber, Layer, Result, Scope } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll } from "vitest"
import { captureLogs, databaseLayer, Db } from "../support/helpers.js"

const clusters: Array<Cluster> = []
const ownCluster = async (start: boolean) => {
  const options = { dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "core-fault-")) }
  const cluster = start ? await startCluster(options) : await createCluster(options)
  clusters.push(cluster)
  return cluster
}
afterAll(async () => {
  await Promise.allSettled(clusters.map((c) => c.destroy()))
})

describe("faults on a real PostgreSQL", () => {
  it.live("warm-up against a stopped server fails with a WarmupError within its timeout", () =>
    Effect.gen(function*() {
      const cluster = yield* Effect.promise(() => ownCluster(false))
      const logs = captureLogs()
      const started = Date.now()
      const result = yield* Layer.build(databaseLayer(cluster.url, { warmup: { timeoutMs: 1500 } })).pipe(
        Effect.scoped,
        Effect.result,
        Effect.provide(logs.layer)
      )
      const elapsed = Date.now() - started
      console.info(`[core] warm-up against a stopped server gave up after ${elapsed} ms`)
      expect(Result.isFailure(result)).toBe(true)
      const error = Result.isFailure(result) ? result.failure : undefined
      expect(error).toBeInstanceOf(WarmupError)
      if (error instanceof WarmupError) {
        expect(error.message).toContain("timed out after 1500 ms")
        expect(error.attempts).toBeGreaterThan(1)
        expect(error.cause?._tag).toBe("ConnectionError")
        expect(error.cause?.safety).toBe("before-send")
      }
      expect(logs.lines.filter((l) => l.startsWith("Warmup attempt")).length).toBeGreaterThan(1)
    }))

  it.live("a server that starts 2 s late is warmed up as soon as it accepts connections", () =>
    Effect.gen(function*() {
      const cluster = yield* Effect.promise(() => ownCluster(false))
      const logs = captureLogs()
      const scope = yield* Scope.make()
      const began = Date.now()
      const building = yield* Layer.buildWithScope(databaseLayer(cluster.url), scope).pipe(
        Effect.provide(logs.layer),
        Effect.forkChild
      )
      yield* Effect.sleep("2 seconds")
      yield* Effect.promise(() => cluster.start())
      const acceptingAt = Date.now()
      const logsBeforeAccepting = logs.lines.length
      const context = yield* Fiber.join(building)
      const readyAt = Date.now()
      const db = Context.getUnsafe(context, Database) as DatabaseService
      console.info(
        `[core] late server: accepting at +${acceptingAt - began} ms, warmed up at +${readyAt - began} ms ` +
          `(${readyAt - acceptingAt} ms later, ${db.warmup.attempts} attempts)`
      )
      expect(db.warmup.attempts).toBeGreaterThan(1)
      // "As soon as": no attempt that started after the server accepted
      // connections failed (one that began just before may still fail).
      const failedAfter = logs.lines.slice(logsBeforeAccepting).filter((l) => l.startsWith("Warmup attempt"))
      expect(failedAfter.length).toBeLessThanOrEqual(1)
      expect((yield* health.pipe(Effect.provide(context))).status).toBe("pass")
      yield* Scope.close(scope, Exit.void)
    }))

  it.live("a server restarted between queries costs at most the retries, and the next query succeeds", () =>
    Effect.gen(function*() {
      const cluster = yield* Effect.promise(() => ownCluster(true))
      yield* Effect.promise(() => createSchema(cluster.url))
      const logs = captureLogs()
      const program = Effect.gen(function*() {
        expect(yield* Db.query((c) => c.purchaseOrder.count())).toBe(0)
        yield* Effect.promise(() => cluster.restart())
        const count = yield* Db.query((c) => c.purchaseOrder.count())
        expect(count).toBe(0)
        yield* Effect.promise(() => cluster.stop("immediate"))
        const restarted = Effect.promise(() => cluster.start()).pipe(Effect.delay("300 millis"), Effect.forkChild)
        const fiber = yield* restarted
        // The server is down when this starts; the retries (500 ms, 1000 ms) reach it once it is back.
        const during = yield* Db.query((c) => c.purchaseOrder.count())
        yield* Fiber.join(fiber)
        return during
      })
      const during = yield* program.pipe(
        Effect.provide(databaseLayer(cluster.url)),
        Effect.provide(logs.layer)
      )
      expect(during).toBe(0)
      const retries = logs.lines.filter((l) => /^purchaseOrder\.count attempt \d\/3 failed: .*retrying in/.test(l))
      console.info(`[core] restart: ${retries.length} retries logged\n  ${retries.join("\n  ")}`)
      expect(retries.length).toBeGreaterThanOrEqual(1)
      expect(retries.length).toBeLessThanOrEqual(RetryPolicy.defaults.delaysMs.length)
    }))

  it.live("no secret in any log line, error message or report of a failed warm-up", () =>
    Effect.gen(function*() {
      const cluster = yield* Effect.promise(() => ownCluster(false))
      const running = yield* Effect.promise(() => ownCluster(true))
      const wrongPassword = new URL(running.url)
      wrongPassword.password = `wrong-${running.password}`
      for (const [url, secret] of [[cluster.url, cluster.password], [wrongPassword.toString(), wrongPassword.password]] as const) {
        const logs = captureLogs()
        const exit = yield* health.pipe(
          Effect.provide(databaseLayer(url, { warmup: { timeoutMs: 800 } })),
          Effect.provide(logs.layer),
          Effect.exit
        )
        expect(Exit.isFailure(exit)).toBe(true)
        const texts = [
          ...logs.lines,
          Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "",
          JSON.stringify(Exit.isFailure(exit) ? Cause.squash(exit.cause) : null)
        ]
        expect(texts.join("\n")).toContain("Warmup")
        for (const text of texts) expect(text).not.toContain(secret)
      }
    }))
})

// A multi-host connection string over two real PostgreSQL servers: the layer
// writes to the one that takes writes, and when that one turns read-only
// (as a demoted primary does) every write in flight moves to the other after
// one shared search. Read-only is `default_transaction_read_only`, reloaded:
// what `target_session_attrs=read-write` tests, without a replication pair
// (the Patroni scenarios of the fault matrix have the real one).
import { Database, health, Metrics } from "@prisma-resilience/core"
import { type Cluster, startCluster, withConnection } from "@prisma-resilience/devdb"
import { describe, expect, it } from "../support/vitest.js"
import { Effect, Result, Layer, Metric, Schedule } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll } from "vitest"
import { createSchema, makePrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { Db, pool, warmup } from "../support/helpers.js"
import { multiHostUrl, setReadOnly, sharePassword } from "../support/nodes.js"

const clusters: Array<Cluster> = []
afterAll(async () => {
  await Promise.allSettled(clusters.map((c) => c.destroy()))
})

// the URL of each server with the password both share
const urls = new Map<Cluster, string>()

const twoServers = Effect.promise(async () => {
  const started = await Promise.all([0, 1].map(async () => {
    const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "core-topology-")) })
    clusters.push(cluster)
    await createSchema(cluster.url)
    return cluster
  }))
  const [a, b] = started as [Cluster, Cluster]
  urls.set(b, await sharePassword(a, b))
  return [a, b] as const
})

const sql = (cluster: Cluster, text: string) =>
  Effect.promise(() => withConnection(urls.get(cluster) ?? cluster.url, async (client) => (await client.query(text)).rows))

const readOnly = (cluster: Cluster, on: boolean) => Effect.promise(() => setReadOnly(urls.get(cluster) ?? cluster.url, on))

const count = (cluster: Cluster, prefix: string) =>
  Effect.map(
    sql(cluster, `SELECT count(*)::int AS n FROM purchase_order WHERE reference LIKE '${prefix}%'`),
    (rows) => rows[0].n as number
  )

const layerFor = (url: string) =>
  Database.layer({
    client: (settings) => makePrismaClient(url, settings),
    url,
    warmup,
    pool,
    topology: { nodeCheckIntervalMs: 200 }
  })

const discoveries = (result: string) =>
  Metric.value(Metric.withAttributes(Metrics.writerDiscoveries, [
    ["database", "default"],
    ["result", result]
  ]))

const create = (reference: string) =>
  Db.query((c) => c.purchaseOrder.create({ data: { reference, totalCents: 100 } }))

describe("a multi-host DATABASE_URL on real servers", () => {
  it.live("warms up on the writable node and moves every write to the other once the writer turns read-only", () =>
    Effect.gen(function*() {
      const [a, b] = yield* twoServers
      const prefix = `topology-${process.pid}-`
      yield* readOnly(a, true)
      const layer = layerFor(multiHostUrl(a, b))
      yield* Effect.gen(function*() {
        // A (listed first) refuses writes: warm-up must pick B.
        yield* create(`${prefix}warm`)
        expect(yield* count(b, `${prefix}warm`)).toBe(1)
        const report = yield* health
        expect(report.nodes?.map((node) => [node.name, node.serves])).toEqual([
          [new URL(a.url).host, "none"],
          [new URL(b.url).host, "writer"]
        ])

        // Now B is demoted and A takes writes: concurrent writes all land on A
        // after one search for the writer.
        const changedBefore = (yield* discoveries("changed")).count
        yield* readOnly(a, false)
        yield* readOnly(b, true)
        const results = yield* Effect.all(
          Array.from({ length: 6 }, (_, i) => Effect.result(create(`${prefix}moved-${i}`))),
          { concurrency: "unbounded" }
        )
        expect(results.filter(Result.isFailure).map((r) => (r as Result.Failure<any, any>).failure.message)).toEqual([])
        expect(yield* count(a, `${prefix}moved-`)).toBe(6)
        expect(yield* count(b, `${prefix}moved-`)).toBe(0)
        expect((yield* discoveries("changed")).count - changedBefore).toBe(1)
        const after = yield* health
        expect(after.nodes?.find((node) => node.serves === "writer")?.name).toBe(new URL(a.url).host)

        // Neither takes writes: health says so instead of passing on SELECT 1.
        // pg_reload_conf() only signals: a backend applies the setting when it
        // next reads its configuration, so health is asked until it can tell.
        yield* readOnly(a, true)
        const failed = yield* Effect.flip(health).pipe(
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "3 seconds" })))
        )
        expect(failed.reason).toBe("read_only")
        yield* readOnly(a, false)
        yield* readOnly(b, false)
      }).pipe(Effect.provide(layer), Effect.scoped)
    }), 60_000)

  it.live("a client factory that overrides pool.connectionString fails warm-up at once: every node answers as one server", () =>
    Effect.gen(function*() {
      const [a, b] = yield* twoServers
      const own = urls.get(b) ?? b.url
      // The documented mistake: `{ ...pool, connectionString: url }` with the app's own URL.
      const layer = Database.layer({
        client: (settings) => makePrismaClient(own, { ...settings, connectionString: own }),
        url: multiHostUrl(a, b),
        warmup,
        pool
      })
      const error = yield* Effect.flip(Layer.build(layer).pipe(Effect.scoped))
      expect(error._tag).toBe("WarmupError")
      if (error._tag !== "WarmupError") return
      expect(error.attempts).toBe(1)
      expect(error.cause?.code).toBe("WRONG_SERVER")
      expect(error.message).toMatch(/answer as one server: the client factory does not connect where pool.connectionString says/)
      expect(error.message).not.toMatch(new RegExp(decodeURIComponent(new URL(a.url).password)))
    }), 60_000)

  it.live("a malformed multi-host string fails the layer with a message that holds no credentials", () =>
    Effect.gen(function*() {
      const url = "postgresql://user:s3cret@127.0.0.1:1,127.0.0.1:99999/db?target_session_attrs=read-write"
      const error = yield* Effect.flip(Layer.build(layerFor(url)).pipe(Effect.scoped))
      expect(error._tag).toBe("RetryConfigError")
      expect(error.message).toMatch(/port in the connection string is out of range/)
      expect(error.message).not.toMatch(/s3cret/)
    }))
})

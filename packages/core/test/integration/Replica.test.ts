// Opted-in reads on a real streaming replica (a two-node Patroni cluster):
// they are served by the replica, a fiber that wrote reads from the writer,
// a read-only transaction runs on the replica, and one that writes there is
// refused (25006) and runs again on the writer. The Promise adapter routes
// an opted-in read as the Effect API does.
import { createResilientPrisma, Database, type LayerOptions, Metrics } from "@prisma-resilience/core"
import { findPrimary, missingPatroniTools, type PatroniCluster, startPatroniCluster } from "@prisma-resilience/devdb"
import { describe, expect, it } from "../support/vitest.js"
import { Effect, Fiber, Layer, Metric } from "effect"
import { afterAll, beforeAll } from "vitest"
import { createSchema, makePrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { Db, pool, warmup } from "../support/helpers.js"

const missing = missingPatroniTools()
const ci = process.env.CI === "true"
if (missing.length > 0 && !ci) {
  console.warn(`[core] replica tests skipped: missing ${missing.join(", ")}; scripts/install-debian-tools.sh installs them`)
}

const routed = (target: string, reason: string) =>
  Effect.map(
    Metric.value(Metric.withAttributes(Metrics.replicaRouting, [
      ["database", "default"],
      ["target", target],
      ["reason", reason]
    ])),
    (state) => state.count
  )

/** how much each routing counter moved while `self` ran */
const routing = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const keys = [["replica", "healthy"], ["primary", "read_your_writes"], ["primary", "fallback"]] as const
    const before = yield* Effect.forEach(keys, ([target, reason]) => routed(target, reason))
    const value = yield* self
    const after = yield* Effect.forEach(keys, ([target, reason]) => routed(target, reason))
    return { value, replica: after[0]! - before[0]!, readYourWrites: after[1]! - before[1]!, fallback: after[2]! - before[2]! }
  })

describe.skipIf(missing.length > 0 && !ci)("opted-in reads on a real replica", () => {
  let cluster: PatroniCluster
  let layer: Layer.Layer<Database, unknown>
  let options: LayerOptions<ReturnType<typeof makePrismaClient>>
  const reference = `replica-${process.pid}`

  beforeAll(async () => {
    expect(missing, "CI installs patroni, etcd-server and postgresql-15 (scripts/install-debian-tools.sh)").toEqual([])
    cluster = await startPatroniCluster({ nodes: 2 })
    const primary = await findPrimary(cluster)
    if (primary === undefined) throw new Error("no primary")
    await createSchema(cluster.nodeUrl(primary.name))
    const url = cluster.url
    options = {
      client: (settings) => makePrismaClient(url, settings),
      url,
      replicaUrls: cluster.nodes.map((node) => cluster.nodeUrl(node.name)),
      warmup,
      pool,
      topology: { nodeCheckIntervalMs: 200, replicaMaxLagMs: 5000 }
    }
    layer = Database.layer(options)
  }, 120_000)

  afterAll(async () => {
    await cluster?.destroy()
  }, 60_000)

  it.live("serves a read from the replica; after a write in the same fiber, from the writer", () =>
    Effect.gen(function*() {
      // the node checks have to have seen the replica before it gets reads
      yield* Effect.sleep("600 millis")
      // Written by another fiber (awaited, not joined: its fiber-local
      // state does not come back), so this fiber still reads from the replica.
      const created = yield* Effect.forkChild(
        Db.query((c) => c.purchaseOrder.create({ data: { reference, totalCents: 1 } }))
      ).pipe(Effect.flatMap((fiber) => Fiber.await(fiber)), Effect.flatten)
      // replication is asynchronous to this read: ask until the replica has the row
      const seen = yield* routing(
        Db.query((c) => c.purchaseOrder.findUnique({ where: { id: created.id } }), { replica: true }).pipe(
          Effect.repeat({ until: (row) => row !== null, times: 50 })
        )
      )
      expect(seen.value?.reference).toBe(reference)
      expect(seen.replica).toBeGreaterThanOrEqual(1)
      expect(seen.readYourWrites).toBe(0)
      // once this fiber writes, its reads go to the writer
      yield* Db.query((c) => c.purchaseOrder.update({ where: { id: created.id }, data: { totalCents: 3 } }))
      const mine = yield* routing(Db.query((c) => c.purchaseOrder.findUnique({ where: { id: created.id } }), { replica: true }))
      expect(mine.value?.totalCents).toBe(3)
      expect(mine.readYourWrites).toBe(1)
      expect(mine.replica).toBe(0)
      const report = yield* Database.pipe(Effect.flatMap((db) => db.nodes))
      expect(report?.map((node) => node.role).sort()).toEqual(["primary", "replica"])
    }).pipe(Effect.provide(layer)), 60_000)

  it.live("runs a read-only transaction on the replica, and one that writes there again on the writer", () =>
    Effect.gen(function*() {
      yield* Effect.sleep("600 millis")
      const read = yield* routing(Db.transaction((tx) => tx.purchaseOrder.count(), { replica: true }))
      expect(read.replica).toBe(1)
      const written = yield* routing(
        Db.transaction((tx) => tx.purchaseOrder.create({ data: { reference: `${reference}-tx`, totalCents: 2 } }), {
          replica: true
        })
      )
      expect(written.fallback).toBe(1)
      expect(written.replica).toBe(0)
      expect(written.value.reference).toBe(`${reference}-tx`)
      const onWriter = yield* Db.query((c) => c.purchaseOrder.count({ where: { reference: `${reference}-tx` } }))
      expect(onWriter).toBe(1)
    }).pipe(Effect.provide(layer)), 60_000)

  it.live("routes an opted-in read of the Promise adapter to the replica", () =>
    Effect.gen(function*() {
      const db = createResilientPrisma(options)
      yield* Effect.addFinalizer(() => Effect.promise(() => db.$disconnect()))
      yield* Effect.promise(() => db.$ready())
      yield* Effect.sleep("600 millis")
      const created = yield* Effect.promise(() =>
        db.purchaseOrder.create({ data: { reference: `${reference}-adapter`, totalCents: 4 } })
      )
      const seen = yield* routing(
        Effect.promise(() => db.$query((c) => c.purchaseOrder.findUnique({ where: { id: created.id } }), { replica: true }))
          .pipe(Effect.repeat({ until: (row) => row !== null, times: 50 }))
      )
      expect(seen.value?.reference).toBe(`${reference}-adapter`)
      expect(seen.replica).toBeGreaterThanOrEqual(1)
      expect(seen.readYourWrites).toBe(0)
    }).pipe(Effect.scoped), 60_000)
})

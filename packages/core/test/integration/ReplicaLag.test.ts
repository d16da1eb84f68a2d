// Issue 17 item 2: a streaming replica whose link to its primary is cut (the
// proxy resets it and refuses new connections) or stalled (the proxy holds
// every byte and closes nothing) has replayed all it received, so lag
// measured on the replica alone says 0. With writes going on at the writer,
// opted-in reads (Effect `Database.query` and the Promise adapter's `$query`)
// must still see every order acknowledged more than DB_REPLICA_MAX_LAG_MS
// earlier, health must not list the replica as within the limit, and once the
// link is back the replica serves reads again. A replica whose lag cannot be
// told (the writer unreachable) is too far behind, and says so.
import { createResilientPrisma, Database, type LayerOptions, Metrics, type NodeHealth } from "@prisma-resilience/core"
import {
  type Cluster,
  startCluster,
  startProxy,
  startStreamingReplica,
  type StreamingReplica,
  type TcpProxy
} from "@prisma-resilience/devdb"
import { describe, expect, it } from "../support/vitest.js"
import { Effect, Layer, Metric } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll, beforeAll } from "vitest"
import { createSchema, makePrismaClient, type PrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { captureLogs, Db, pool, warmup } from "../support/helpers.js"

const MAX_LAG_MS = 1000
// how long the link stays down while orders are written
const FAULT_MS = 4000
const WRITE_EVERY_MS = 100
const READ_EVERY_MS = 100

const routed = (target: string, reason: string) =>
  Effect.map(
    Metric.value(Metric.withAttributes(Metrics.replicaRouting, [
      ["database", "default"],
      ["target", target],
      ["reason", reason]
    ])),
    (state) => state.count
  )
const routedToReplica = routed("replica", "healthy")

interface Ack {
  readonly reference: string
  readonly at: number
}

/** A read's verdict: the orders acknowledged more than the lag limit before it was sent, and those it missed. */
interface Verdict {
  readonly sentAt: number
  /** acknowledged before `sentAt - MAX_LAG_MS` */
  readonly due: number
  /** of those, acknowledged after the fault began */
  readonly dueSinceFault: number
  readonly missing: number
  /** how long before the read the oldest missing order was acknowledged */
  readonly oldestMissingMs: number
}

const judge = (acks: ReadonlyArray<Ack>, sentAt: number, seen: ReadonlyArray<string>, faultAt: number): Verdict => {
  const got = new Set(seen)
  const due = acks.filter((ack) => ack.at < sentAt - MAX_LAG_MS)
  const missing = due.filter((ack) => !got.has(ack.reference))
  return {
    sentAt,
    due: due.length,
    dueSinceFault: due.filter((ack) => ack.at >= faultAt).length,
    missing: missing.length,
    oldestMissingMs: missing.length === 0 ? 0 : sentAt - missing[0]!.at
  }
}

describe("opted-in reads on a replica cut off from its primary", () => {
  let primary: Cluster
  let replica: StreamingReplica
  let writer: pg.Pool
  let options: LayerOptions<PrismaClient>
  let layer: Layer.Layer<Database, unknown>
  let replicaNode: string

  beforeAll(async () => {
    primary = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "core-replica-lag-")) })
    await createSchema(primary.url)
    replica = await startStreamingReplica(primary)
    replicaNode = `127.0.0.1:${replica.cluster.port}`
    writer = new pg.Pool({ connectionString: primary.url, max: 2, connectionTimeoutMillis: 5_000 })
    writer.on("error", () => {})
    const url = primary.url
    options = {
      client: (settings) => makePrismaClient(url, settings),
      url,
      replicaUrls: [replica.cluster.url],
      warmup,
      pool,
      topology: { nodeCheckIntervalMs: 200, replicaMaxLagMs: MAX_LAG_MS }
    }
    layer = Database.layer(options)
  }, 120_000)

  const proxies: Array<TcpProxy> = []
  afterAll(async () => {
    await Promise.allSettled(proxies.map((proxy) => proxy.close()))
    await writer?.end().catch(() => {})
    await replica?.destroy()
    await primary?.destroy()
  }, 60_000)

  const insert = (reference: string) =>
    writer.query("INSERT INTO purchase_order (id, reference, total_cents) VALUES (gen_random_uuid(), $1, 1)", [reference])

  /** waits until the replica's WAL receiver streams and it has replayed `reference` */
  const streamingWith = async (reference: string) => {
    const deadline = Date.now() + 30_000
    const direct = new pg.Client({ connectionString: replica.cluster.url, connectionTimeoutMillis: 5_000 })
    await direct.connect()
    try {
      while (Date.now() < deadline) {
        const { rows } = await direct.query<{ found: boolean; receiver: string | null }>(
          `SELECT EXISTS (SELECT 1 FROM purchase_order WHERE reference = $1) AS found,
             (SELECT status FROM pg_stat_wal_receiver) AS receiver`,
          [reference]
        )
        if (rows[0]!.found && rows[0]!.receiver === "streaming") return
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      throw new Error(`the replica did not stream and replay ${reference} within 30 s`)
    } finally {
      await direct.end().catch(() => {})
    }
  }

  const lagGauge = (node = replicaNode) =>
    Effect.map(
      Metric.value(Metric.withAttributes(Metrics.nodeReplayLag, [["database", "default"], ["node", node]])),
      (state) => state.value
    )

  /**
   * Orders written every WRITE_EVERY_MS on the writer while the link is down
   * for FAULT_MS, and opted-in reads of them every READ_EVERY_MS, alternating
   * between the Effect API and the Promise adapter; each read judged against
   * the orders acknowledged before it was sent. Then the link comes back.
   */
  const underFault = (prefix: string, fault: () => void) =>
    Effect.gen(function*() {
      const adapter = createResilientPrisma(options)
      yield* Effect.addFinalizer(() => Effect.promise(() => adapter.$disconnect()))
      yield* Effect.promise(() => adapter.$ready())
      const acks: Array<Ack> = []
      const readers = {
        effect: Db.query((c) =>
          c.purchaseOrder.findMany({ where: { reference: { startsWith: prefix } }, select: { reference: true } }), {
          replica: true
        }),
        adapter: Effect.promise(() =>
          adapter.$query((c) =>
            c.purchaseOrder.findMany({ where: { reference: { startsWith: prefix } }, select: { reference: true } }), {
            replica: true
          })
        )
      }
      const read = (which: keyof typeof readers, faultAt: number) =>
        Effect.gen(function*() {
          const sentAt = Date.now()
          const rows = yield* readers[which]
          return judge(acks, sentAt, rows.map((row) => row.reference), faultAt)
        })

      // Used when fresh: with the link up the replica takes the reads.
      yield* Effect.promise(() => insert(`${prefix}-before`)).pipe(
        Effect.tap(() => Effect.sync(() => acks.push({ reference: `${prefix}-before`, at: Date.now() })))
      )
      const fresh = yield* waitForReplica(read("effect", Date.now()), 15_000)
      expect(fresh.movedAfterMs, "the replica takes opted-in reads while its link is up").toBeDefined()
      // The fault starts on a replica that streams and has everything so far
      // (after the previous test's cut its WAL receiver may still be reconnecting).
      yield* Effect.promise(() => streamingWith(`${prefix}-before`))

      fault()
      const faultAt = Date.now()
      const writing = Effect.promise(async () => {
        for (let n = 0; Date.now() - faultAt < FAULT_MS; n++) {
          const reference = `${prefix}-${n}`
          await insert(reference)
          acks.push({ reference, at: Date.now() })
          await new Promise((resolve) => setTimeout(resolve, WRITE_EVERY_MS))
        }
      })
      const verdicts: Array<Verdict> = []
      const reading = Effect.gen(function*() {
        for (let n = 0; Date.now() - faultAt < FAULT_MS; n++) {
          verdicts.push(yield* read(n % 2 === 0 ? "effect" : "adapter", faultAt))
          yield* Effect.sleep(`${READ_EVERY_MS} millis`)
        }
      })
      const routedBefore = yield* routedToReplica
      yield* Effect.all([writing, reading], { concurrency: 2, discard: true })
      const routedDuring = (yield* routedToReplica) - routedBefore
      const nodes = yield* Database.pipe(Effect.flatMap((db) => db.nodes))
      const entry = nodes?.find((node) => node.name === replicaNode)
      const gauge = yield* lagGauge()
      const receiver = (yield* Effect.promise(() => replica.status())).receiver

      replica.restore()
      const restoredAt = Date.now()
      const back = yield* waitForReplica(read("adapter", restoredAt), 30_000)
      return { verdicts, routedDuring, entry, gauge, receiver, back }
    }).pipe(Effect.scoped)

  /** reads until one is served by the replica (its routing counter moved); what that read returned and how long it took */
  const waitForReplica = <A, R>(read: Effect.Effect<A, unknown, R>, timeoutMs: number) =>
    Effect.gen(function*() {
      const started = Date.now()
      while (Date.now() - started < timeoutMs) {
        const before = yield* routedToReplica
        const value = yield* read
        if ((yield* routedToReplica) > before) return { value, movedAfterMs: (Date.now() - started) as number | undefined }
        yield* Effect.sleep("100 millis")
      }
      return { value: undefined, movedAfterMs: undefined }
    })

  const expectNoStaleRead = (
    label: string,
    outcome: {
      readonly verdicts: ReadonlyArray<Verdict>
      readonly entry: NodeHealth | undefined
      readonly gauge: number
      readonly routedDuring: number
      readonly receiver: string | null
      readonly back: { readonly value: Verdict | undefined; readonly movedAfterMs: number | undefined }
    }
  ) => {
    const { back, entry, gauge, receiver, routedDuring, verdicts } = outcome
    const stale = verdicts.filter((verdict) => verdict.missing > 0)
    // reads that could have missed an order written during the fault
    const telling = verdicts.filter((verdict) => verdict.dueSinceFault > 0)
    console.info(
      `[core] replica link ${label}: ${verdicts.length} opted-in reads (${routedDuring} served by the replica), ${telling.length} due orders written after the fault; ` +
        `${stale.length} missed some (most ${Math.max(0, ...stale.map((v) => v.missing))}, oldest ` +
        `${Math.max(0, ...stale.map((v) => v.oldestMissingMs))} ms); /health node ${entry?.role} lagMs ${entry?.lagMs} lag ${entry?.lag}; ` +
        `db_node_replay_lag_seconds ${gauge}; WAL receiver ${receiver ?? "none"}; replica back ${back.movedAfterMs ?? "never"} ms after the restore`
    )
    expect(telling.length, "reads sent more than the lag limit after the fault began").toBeGreaterThanOrEqual(10)
    expect(stale, "opted-in reads that missed orders acknowledged more than the lag limit earlier").toEqual([])
    expect(entry?.role).toBe("replica")
    expect(entry?.lag === "over" || entry?.lag === "unknown", `the replica's lag in health: ${entry?.lag}`).toBe(true)
    if (entry?.lagMs !== undefined) expect(entry.lagMs).toBeGreaterThan(MAX_LAG_MS)
    expect(gauge, "db_node_replay_lag_seconds of the cut-off replica").toBeGreaterThan(MAX_LAG_MS / 1000)
    expect(back.movedAfterMs, "the replica serves opted-in reads again once the link is back").toBeDefined()
    expect(back.value?.missing, "the first read the restored replica served").toBe(0)
  }

  it.live("cut link: reads go to the writer while the replica falls behind, and back once it caught up", () =>
    Effect.gen(function*() {
      const outcome = yield* underFault(`cut-${process.pid}`, () => replica.cut())
      expectNoStaleRead("cut", outcome)
    }).pipe(Effect.provide(layer)), 90_000)

  it.live("stalled link: the same, though the replica's WAL receiver still says streaming", () =>
    Effect.gen(function*() {
      const outcome = yield* underFault(`stall-${process.pid}`, () => replica.stall())
      expectNoStaleRead("stalled", outcome)
    }).pipe(Effect.provide(layer)), 90_000)

  it.live("writer unreachable: a caught-up replica's lag cannot be told, so it serves no reads and reports no lag of 0", () =>
    Effect.gen(function*() {
      // the writer reached through a proxy that this test refuses; the replica directly, link up
      const proxy = yield* Effect.promise(() => startProxy({ host: primary.host, port: primary.port }))
      proxies.push(proxy)
      const viaProxy = new URL(primary.url)
      viaProxy.port = String(proxy.port)
      const url = viaProxy.toString()
      const layer = Database.layer({ ...options, client: (settings) => makePrismaClient(url, settings), url })
      yield* Effect.gen(function*() {
        const reference = `unreachable-${process.pid}-before`
        yield* Effect.promise(() => insert(reference))
        yield* Effect.promise(() => streamingWith(reference))
        const probe = Db.query((c) => c.purchaseOrder.count(), { replica: true })
        const fresh = yield* waitForReplica(probe, 15_000)
        expect(fresh.movedAfterMs, "the replica takes opted-in reads while the writer is reachable").toBeDefined()

        proxy.refuse(true)
        proxy.cutAll()
        // past the staleness of the writer's newest sample: 3 checks of 200 ms plus the probe timeout
        yield* Effect.sleep(`${3 * 200 + warmup.healthTimeoutMs + 500} millis`)
        const lagBefore = yield* routed("primary", "lag")
        const replicaBefore = yield* routedToReplica
        // the read goes to the writer, which is down: it fails, and that is the point
        yield* Effect.result(Db.query((c) => c.purchaseOrder.count(), { replica: true, retry: { delaysMs: [] } }))
        const lagRouted = (yield* routed("primary", "lag")) - lagBefore
        const replicaRouted = (yield* routedToReplica) - replicaBefore
        const entry = (yield* Database.pipe(Effect.flatMap((db) => db.nodes)))?.find((node) => node.name === replicaNode)
        const gauge = yield* lagGauge()
        console.info(
          `[core] writer unreachable: /health node ${entry?.role} lagMs ${entry?.lagMs} lag ${entry?.lag}; ` +
            `db_node_replay_lag_seconds ${gauge}; opted-in read routed lag ${lagRouted}, replica ${replicaRouted}`
        )
        expect(entry?.role).toBe("replica")
        expect(entry?.lag).toBe("unknown")
        expect(entry?.lagMs).toBeUndefined()
        expect(gauge).toBe(Infinity)
        expect(replicaRouted).toBe(0)
        expect(lagRouted).toBe(1)

        proxy.refuse(false)
        const back = yield* waitForReplica(probe, 30_000)
        expect(back.movedAfterMs, "the replica serves reads again once the writer is back").toBeDefined()
      }).pipe(Effect.provide(layer))
    }), 90_000)

  it.live("replicas without the writer's url: a warning, and no read goes to a replica whose lag cannot be told", () => {
    const logs = captureLogs()
    const url = primary.url
    // the factory connects the writer by itself; the layer only knows the replica
    const layer = Database.layer({
      client: (settings) => makePrismaClient(url, settings),
      replicaUrls: [replica.cluster.url],
      warmup,
      pool,
      topology: { nodeCheckIntervalMs: 200, replicaMaxLagMs: MAX_LAG_MS }
    })
    return Effect.gen(function*() {
      yield* Effect.sleep("600 millis")
      const lagBefore = yield* routed("primary", "lag")
      const replicaBefore = yield* routedToReplica
      for (let i = 0; i < 5; i++) yield* Db.query((c) => c.purchaseOrder.count(), { replica: true })
      expect((yield* routedToReplica) - replicaBefore).toBe(0)
      expect((yield* routed("primary", "lag")) - lagBefore).toBe(5)
      const entry = (yield* Database.pipe(Effect.flatMap((db) => db.nodes)))?.find((node) => node.name === replicaNode)
      expect(entry?.lag).toBe("unknown")
      expect(logs.lines.filter((line) => line.includes("their lag behind the writer cannot be measured"))).toHaveLength(1)
    }).pipe(Effect.provide(layer), Effect.provide(logs.layer))
  }, 60_000)
})

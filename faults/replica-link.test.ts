// Issue 17 item 2 as a fault scenario: the real service (as `npm start` runs
// it) with DATABASE_REPLICA_URLS naming a plain streaming replica whose
// replication link runs through a loopback proxy. Under write load the link
// is cut (reset, new connections refused), then stalled (bytes held, nothing
// closed: the replica's WAL receiver keeps saying `streaming`). The replica
// has replayed all it received either way, so a lag measured on the replica
// alone says 0. No list read (GET /purchase-orders opts in to replicas) may
// miss an order acknowledged more than DB_REPLICA_MAX_LAG_MS (+ a margin)
// before it was sent, and once the link is back the replica serves reads again.
import { type Cluster, startCluster, startStreamingReplica, type StreamingReplica } from "@prisma-resilience/devdb"
import { applyMigrations } from "@prisma-resilience/http/db"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { health, routing, routingSince, routingText, scrape } from "./support/ha.js"
import {
  checkWrites,
  type Row,
  type Service,
  seed,
  sleep,
  startService,
  table,
  unhandledLines,
  waitHealthy
} from "./support/harness.js"
import { sampleValue, startLinkLoad, staleReads } from "./support/replica-link.js"

// the default, and the figure of the issue
const MAX_LAG_MS = 1000
// timer and scheduling slack between the client's clock and the service's
const MARGIN_MS = 200
const FAULT_MS = 8000
const STEADY_MS = 2000

describe("replica link: a streaming replica cut off from its primary under write load", () => {
  let primary: Cluster
  let replica: StreamingReplica
  let s: Service
  let replicaId: string
  const rows: Array<Row> = []

  beforeAll(async () => {
    primary = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "faults-replica-link-")) })
    await applyMigrations(primary.url)
    await seed(primary, "rl", 5)
    replica = await startStreamingReplica(primary)
    replicaId = `127.0.0.1:${replica.cluster.port}`
    s = await startService(primary.url, {
      DATABASE_REPLICA_URLS: replica.cluster.url,
      DB_REPLICA_MAX_LAG_MS: String(MAX_LAG_MS)
    })
    await waitHealthy(s.baseUrl)
  }, 120_000)

  afterAll(async () => {
    await s?.stop().catch(() => {})
    await replica?.destroy()
    await primary?.destroy()
    console.info(
      `\nReplica link scenarios (${new Date().toISOString()}, ${os.cpus().length} cores, Node ${process.version}; ` +
        `embedded PostgreSQL + streaming replica through a proxy, DB_REPLICA_MAX_LAG_MS ${MAX_LAG_MS}, ` +
        `stale = a list read missing an order acknowledged > ${MAX_LAG_MS + MARGIN_MS} ms before it was sent)\n\n${table(rows)}\n`
    )
  }, 60_000)

  /** polls the routing counters until the replica served a read; ms it took, or undefined */
  const waitReplicaReads = async (timeoutMs: number) => {
    const started = Date.now()
    const from = routing(await scrape(s.baseUrl))
    while (Date.now() - started < timeoutMs) {
      if (routingSince(from, routing(await scrape(s.baseUrl))).reasons["replica/healthy"] ?? 0) return Date.now() - started
      await sleep(100)
    }
    return undefined
  }

  const scenario = async (name: "cut" | "stalled", fault: () => void) => {
    const logFrom = s.logs.length
    const prefix = `rl-${name}`
    const load = startLinkLoad(s.baseUrl, {
      readers: 3,
      pageSize: 10,
      prefix,
      writePauseMs: 40,
      readPauseMs: 20,
      maxDurationMs: 90_000
    })
    let steadyMs: number | undefined
    let steady: ReturnType<typeof routingSince> | undefined
    let during: ReturnType<typeof routingSince> | undefined
    let node: Awaited<ReturnType<typeof health>>["nodes"][number] | undefined
    let gauge: number | undefined
    let receiver: string | null = null
    let backMs: number | undefined
    try {
      steadyMs = await waitReplicaReads(20_000)
      // the other side of the promise: a replica that keeps up serves the reads under write load
      const steadyFrom = routing(await scrape(s.baseUrl))
      await sleep(STEADY_MS)
      steady = routingSince(steadyFrom, routing(await scrape(s.baseUrl)))
      const faultAt = Date.now()
      fault()
      try {
        // past the lag limit no read may reach the replica: count from then to the restore
        await sleep(MAX_LAG_MS + 500)
        const from = routing(await scrape(s.baseUrl))
        await sleep(FAULT_MS - (Date.now() - faultAt) - 1000)
        node = (await health(s.baseUrl)).nodes.find((n) => n.componentId === replicaId)
        const metrics = await (await fetch(`${s.baseUrl}/metrics`)).text()
        gauge = sampleValue(metrics, "db_node_replay_lag_seconds", { node: replicaId })
        receiver = (await replica.status()).receiver
        await sleep(Math.max(0, FAULT_MS - (Date.now() - faultAt)))
        during = routingSince(from, routing(await scrape(s.baseUrl)))
      } finally {
        replica.restore()
      }
      backMs = await waitReplicaReads(30_000)
      await sleep(1000)
    } finally {
      await load.stop()
    }
    const result = load.result
    const { judged, stale } = staleReads(result.acks, result.lists, MAX_LAG_MS + MARGIN_MS)
    const writes = await checkWrites(primary, prefix, result.acknowledged)
    const unhandled = unhandledLines({ ...s, logs: s.logs.slice(logFrom) })
    const lists = result.lists.filter((list) => list.status === 200).length
    rows.push({
      scenario: `replica link ${name} (${FAULT_MS / 1000} s)`,
      requests: result.sent,
      ok: result.ok,
      typed503: result.typed503,
      other: result.other.length,
      unhandled: unhandled.length,
      rowsExpected: writes.expected,
      rowsFound: writes.found,
      health: "–",
      notes:
        `${stale.length} of ${judged} list reads stale (${lists} answered)` +
        (stale.length === 0
          ? ""
          : ` (up to ${Math.max(...stale.map((r) => r.missing))} orders missing, oldest ${
            Math.max(...stale.map((r) => r.oldestMs))
          } ms)`) +
        `; replica reads ${steadyMs ?? "never"} ms into the load, then ${steady ? routingText(steady) : "–"}; from ${MAX_LAG_MS + 500} ms into the fault ` +
        `${during ? routingText(during) : "–"}; /health replica ${node?.status ?? "absent"} ` +
        `(${node?.output ?? `lag ${node?.observedValue ?? "–"} ms`}), db_node_replay_lag_seconds ${gauge ?? "absent"}, ` +
        `WAL receiver ${receiver ?? "none"}; replica reads again ${backMs ?? "never"} ms after the restore`
    })
    expect(steadyMs, "the replica serves list reads while its link is up").toBeDefined()
    expect(steady!.replica / Math.max(1, steady!.replica + steady!.primary), "share of list reads on the replica with the link up")
      .toBeGreaterThan(0.9)
    expect(judged, "list reads with orders due").toBeGreaterThan(100)
    expect(stale, "list reads that missed orders acknowledged more than the lag limit earlier").toEqual([])
    expect(during?.reasons["replica/healthy"] ?? 0, "list reads served by the cut-off replica past the lag limit").toBe(0)
    expect(during?.reasons["primary/lag"] ?? 0, "list reads sent to the writer for lag").toBeGreaterThan(0)
    expect(node?.status, "the replica's node check in /health").toBe("fail")
    expect(gauge, "db_node_replay_lag_seconds of the replica").toBeGreaterThan(MAX_LAG_MS / 1000)
    expect(backMs, "the replica serves list reads again after the restore").toBeDefined()
    expect(result.typed503, "typed 503s with a healthy primary").toBe(0)
    expect(result.other, "answers other than 2xx or a typed 503").toEqual([])
    expect(unhandled).toEqual([])
    expect(s.crashed()).toBeUndefined()
    expect(writes.lost).toBe(0)
    expect(writes.duplicated).toBe(0)
  }

  it("cut: list reads go to the writer once the replica is past the lag limit, and back after the restore", async () => {
    await scenario("cut", () => replica.cut())
  })

  it("stalled: the same while the replica's WAL receiver still says streaming", async () => {
    // after the cut's restore the WAL receiver reconnects on its own retry interval
    const deadline = Date.now() + 30_000
    while ((await replica.status()).receiver !== "streaming" && Date.now() < deadline) await sleep(200)
    await scenario("stalled", () => replica.stall())
  })
})

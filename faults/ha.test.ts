// High availability under load (issue 11): the real service (a child process,
// as `npm start` runs it) against a two-node Patroni cluster in synchronous
// mode, with its replicas serving the opted-in list reads. One cluster for the
// file: the scenarios run in order and each leaves the cluster with a leader
// and a synchronous standby for the next, except the leader kill, which is last.
import { findPrimary, missingPatroniTools, type PatroniCluster, startPatroniCluster } from "@prisma-resilience/devdb"
import { applyMigrations } from "@prisma-resilience/http/db"
import os from "node:os"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  componentId,
  discoveriesSince,
  discoveriesText,
  firstWriteAnsweredAfter,
  firstWriteSentAfter,
  type HaLoadResult,
  haTable,
  type HaRow,
  health,
  type HealthWatch,
  NodeRoles,
  redactor,
  routing,
  routingSince,
  routingText,
  scrape,
  startHaLoad,
  waitPrimary,
  waitWritable,
  watchHealth
} from "./support/ha.js"
import {
  BUDGET_SLACK_MS,
  checkWritesAt,
  requestBudgetMs,
  seedAt,
  type Service,
  sleep,
  startService,
  unhandledLines,
  waitHealthy
} from "./support/harness.js"

const missing = missingPatroniTools()
const ci = process.env.CI === "true"
if (missing.length > 0 && !ci) {
  console.warn(`[faults] HA scenarios skipped: missing ${missing.join(", ")}; scripts/install-debian-tools.sh installs them`)
}

const MAX_LAG_MS = 500

/** the same failure hundreds of times is one line with its count */
const countEach = (lines: ReadonlyArray<string>) => {
  const counts: Record<string, number> = {}
  for (const line of lines) counts[line] = (counts[line] ?? 0) + 1
  return counts
}

describe.skipIf(missing.length > 0 && !ci)("HA: Patroni failover and read replicas", () => {
  let cluster: PatroniCluster
  let s: Service
  let roles: NodeRoles
  let redact: (text: string) => string = (text) => text
  let ids: ReadonlyArray<string> = []
  const rows: Array<HaRow> = []
  // every scenario's acknowledged writes, checked again on the leader after the kill
  const acknowledged = new Map<string, ReadonlySet<string>>()
  const clusterLog: Array<string> = []

  beforeAll(async () => {
    expect(missing, "CI installs patroni, etcd-server and postgresql-15 (scripts/install-debian-tools.sh)").toEqual([])
    cluster = await startPatroniCluster({
      nodes: 2,
      synchronousMode: true,
      log: (line) => {
        clusterLog.push(line)
        if (clusterLog.length > 400) clusterLog.shift()
      }
    })
    redact = redactor(cluster)
    roles = new NodeRoles(cluster)
    const leader = await waitPrimary(cluster)
    await applyMigrations(cluster.nodeUrl(leader.name))
    ids = await seedAt(cluster.nodeUrl(leader.name), "ha", 20)
    s = await startService(cluster.url, {
      // every node: the layer itself tells the replicas from the writer, which changes in scenarios 3 and 4
      DATABASE_REPLICA_URLS: cluster.nodes.map((node) => cluster.nodeUrl(node.name)).join(","),
      DB_REPLICA_MAX_LAG_MS: String(MAX_LAG_MS),
      DB_NODE_CHECK_INTERVAL_MS: "250"
    })
    await waitHealthy(s.baseUrl).catch((error: Error) => {
      throw new Error(`${error.message}; service log:\n${redact(s.logs.slice(-30).join("\n"))}`)
    })
  }, 180_000)

  afterAll(async () => {
    await s?.stop().catch(() => {})
    await roles?.close()
    await cluster?.destroy()
    console.info(
      `\nHA scenarios (${new Date().toISOString()}, ${os.cpus().length} cores, Node ${process.version}; ` +
        `2 Patroni nodes, synchronous_mode, DB_REPLICA_MAX_LAG_MS ${MAX_LAG_MS})\n\n${haTable(rows)}\n`
    )
  }, 120_000)

  const load = (prefix: string, maxDurationMs: number) =>
    startHaLoad(s.baseUrl, {
      clients: 4,
      readIds: ids,
      writeEvery: 3,
      listEvery: 2,
      prefix,
      pauseMs: 20,
      maxDurationMs
    })

  const standby = async () => {
    const leader = await cluster.leader()
    return cluster.nodes.find((node) => node.name !== leader)!.name
  }

  /** a leader and a running synchronous standby: what a scenario starts from */
  const waitSyncStandby = () =>
    cluster.waitFor(
      async () => (await cluster.members()).some((m) => m.role === "sync_standby" && m.state === "running"),
      60_000,
      "a synchronous standby"
    )

  const serviceLines = (from: number, pattern: RegExp) =>
    s.logs.slice(from).filter((line) => pattern.test(line)).map(redact)

  /** The invariants every scenario shares; records the table row. */
  const finish = async (
    scenario: string,
    prefix: string,
    logFrom: number,
    result: HaLoadResult,
    figures: string,
    watch?: HealthWatch
  ) => {
    const leader = await waitPrimary(cluster)
    const writes = await checkWritesAt(cluster.nodeUrl(leader.name), prefix, result.acknowledged)
    acknowledged.set(prefix, result.acknowledged)
    const unhandled = unhandledLines({ ...s, logs: s.logs.slice(logFrom) })
    const budgetMs = requestBudgetMs(s)
    rows.push({
      scenario,
      requests: result.sent,
      ok: result.ok,
      typed503: result.typed503,
      other: result.other.length,
      lost: writes.lost,
      duplicated: writes.duplicated,
      maxLatencyMs: result.maxLatencyMs,
      budgetMs,
      figures
    })
    if (result.other.length > 0 || unhandled.length > 0 || (watch && watch.passWithoutWriter.length + watch.passWithReadOnlyPrimary.length > 0)) {
      console.warn(
        `[faults] ${scenario}: failures ${JSON.stringify(countEach(result.other.map(redact)))}; ` +
          `service log lines about them:\n${serviceLines(logFrom, /error|failed|unavailable|discovery|unhandled|defect/i).slice(0, 30).join("\n")}\n` +
          `cluster log, last lines:\n${clusterLog.slice(-15).map(redact).join("\n")}`
      )
    }
    expect(countEach(result.other.map(redact)), "requests answered with anything but 2xx or a typed 503").toEqual({})
    expect(unhandled.map(redact), "unhandled errors in the service log").toEqual([])
    expect(s.crashed()).toBeUndefined()
    expect(writes.lost, "acknowledged writes missing on the leader").toBe(0)
    expect(writes.duplicated, "writes stored twice").toBe(0)
    expect(result.maxLatencyMs, `the longest request against DB_REQUEST_BUDGET_MS ${budgetMs} + ${BUDGET_SLACK_MS} ms`)
      .toBeLessThanOrEqual(budgetMs + BUDGET_SLACK_MS)
    if (watch !== undefined) {
      expect(watch.passWithoutWriter, "/health passed while no node accepted writes").toEqual([])
      expect(watch.passWithReadOnlyPrimary, "/health passed with a read-only node as the primary").toEqual([])
    }
  }

  /** polls the routing counters until `until` holds for the reads routed since `from`; the time it took, or undefined */
  const waitRouting = async (
    from: ReturnType<typeof routing>,
    until: (since: ReturnType<typeof routing>) => boolean,
    timeoutMs: number
  ) => {
    const started = Date.now()
    while (Date.now() - started < timeoutMs) {
      if (until(routingSince(from, routing(await scrape(s.baseUrl))))) return Date.now() - started
      await sleep(100)
    }
    return undefined
  }

  it("0. steady state: opted-in reads go to the replica", async () => {
    const logFrom = s.logs.length
    const replica = await standby()
    // the layer has seen the replica under the lag limit (a node check every 250 ms)
    await cluster.waitFor(
      async () => (await health(s.baseUrl)).nodes.some((n) => n.componentId === componentId(cluster, replica) && n.role === "replica" && n.status === "pass"),
      15_000,
      "the service's /health to list the standby as a passing replica"
    ).catch(() => {})
    const before = routing(await scrape(s.baseUrl))
    const running = load("ha0", 8000)
    const result = await running.done
    const since = routingSince(before, routing(await scrape(s.baseUrl)))
    const share = since.replica / Math.max(1, since.replica + since.primary)
    const nodes = (await health(s.baseUrl)).nodes
    await finish(
      "0 steady state (8 s)",
      "ha0",
      logFrom,
      result,
      `replica share ${(100 * share).toFixed(1)} % (${routingText(since)}); ${result.byKind.list.sent} list reads sent; ` +
        `/health nodes: ${nodes.map((n) => `${n.componentId} ${n.role} ${n.status}`).join(", ") || "none listed"}`
    )
    expect(result.typed503, "typed 503s with no fault").toBe(0)
    expect(since.replica + since.primary, "opted-in reads counted by db_replica_routing_total").toBeGreaterThanOrEqual(result.byKind.list.ok)
    expect(share, "share of opted-in reads served by the replica").toBeGreaterThan(0.5)
    expect(nodes.map((n) => n.role).sort()).toEqual(["primary", "replica"])
  })

  it("1. replica lag: opted-in reads move to the primary while replay is paused, and come back", async () => {
    const logFrom = s.logs.length
    const replica = await standby()
    const running = load("ha1", 60_000)
    let pausedAt = 0
    let lagMs: number | undefined
    let held: ReturnType<typeof routing> | undefined
    let backMs: number | undefined
    let lagReported: number | undefined
    try {
      try {
        await sleep(1500)
        await cluster.pauseReplay(replica)
        pausedAt = Date.now()
        const atPause = routing(await scrape(s.baseUrl))
        // the write load keeps the replay falling behind, so once moved the reads stay on the primary
        lagMs = await waitRouting(atPause, (since) => (since.reasons["primary/lag"] ?? 0) > 0, 15_000)
        if (lagMs !== undefined) {
          await sleep(500)
          const holdFrom = routing(await scrape(s.baseUrl))
          await sleep(1500)
          held = routingSince(holdFrom, routing(await scrape(s.baseUrl)))
          const entry = (await health(s.baseUrl)).nodes.find((n) => n.componentId === componentId(cluster, replica))
          lagReported = entry?.observedValue
        }
      } finally {
        await cluster.resumeReplay(replica)
      }
      const atResume = routing(await scrape(s.baseUrl))
      backMs = await waitRouting(atResume, (since) => since.replica > 0, 15_000)
      await sleep(500)
    } finally {
      await running.stop()
    }
    const result = running.result
    await finish(
      "1 replica replay paused",
      "ha1",
      logFrom,
      result,
      `reads moved ${lagMs ?? "never"} ms after the pause; while paused ${held ? routingText(held) : "–"}; ` +
        `lag in /health ${lagReported ?? "–"} ms; replica reads back ${backMs ?? "never"} ms after the resume`
    )
    expect(result.typed503, "typed 503s with a healthy primary").toBe(0)
    expect(lagMs, "opted-in reads routed to the primary for lag").toBeDefined()
    expect(held?.replica, "opted-in reads served by the lagging replica").toBe(0)
    expect(held?.primary).toBeGreaterThan(0)
    expect(lagReported, "replay lag of the paused replica in /health").toBeGreaterThan(MAX_LAG_MS)
    expect(backMs, "opted-in reads back on the replica after the resume").toBeDefined()
    expect(pausedAt).toBeGreaterThan(0)
  })

  it("2. replica stopped: opted-in reads fall back to the primary, no read fails", async () => {
    const logFrom = s.logs.length
    const replica = await standby()
    const running = load("ha2", 90_000)
    let stoppedFor: ReturnType<typeof routing> | undefined
    let listed: string | undefined
    let backMs: number | undefined
    let stopMs = 0
    let rejoinMs = 0
    try {
      try {
        await sleep(1500)
        const stopping = Date.now()
        await cluster.stopNode(replica)
        stopMs = Date.now() - stopping
        // a second for the node checks to notice, then a window in which no read may go to it
        await sleep(1000)
        const from = routing(await scrape(s.baseUrl))
        const entry = await cluster.waitFor(
          async () => (await health(s.baseUrl)).nodes.find((n) => n.componentId === componentId(cluster, replica) && n.status === "fail"),
          5000,
          "the stopped replica failing in /health"
        ).catch(() => undefined)
        listed = entry && `${entry.role} ${entry.status}`
        await sleep(2000)
        stoppedFor = routingSince(from, routing(await scrape(s.baseUrl)))
      } finally {
        const starting = Date.now()
        await cluster.startNode(replica)
        await cluster.waitFor(
          async () => (await cluster.members()).some((m) => m.name === replica && m.role !== "leader" && m.state === "running"),
          60_000,
          `${replica} running as a replica`
        )
        rejoinMs = Date.now() - starting
      }
      const atStart = routing(await scrape(s.baseUrl))
      backMs = await waitRouting(atStart, (since) => since.replica > 0, 20_000)
    } finally {
      await running.stop()
    }
    const result = running.result
    const reads = result.byKind.get.sent + result.byKind.list.sent
    const readsOk = result.byKind.get.ok + result.byKind.list.ok
    await finish(
      "2 replica stopped",
      "ha2",
      logFrom,
      result,
      `stopNode ${stopMs} ms; while stopped ${stoppedFor ? routingText(stoppedFor) : "–"}; /health listed it as ${listed ?? "–"}; ` +
        `${readsOk}/${reads} reads 2xx, writes ${result.byKind.post.typed503} typed 503; ` +
        `rejoined in ${rejoinMs} ms, replica reads back ${backMs ?? "never"} ms later`
    )
    expect(readsOk, "reads not answered 2xx").toBe(reads)
    expect(stoppedFor?.replica, "opted-in reads routed to the stopped replica").toBe(0)
    expect(stoppedFor?.primary, "opted-in reads served by the primary while the replica was down").toBeGreaterThan(0)
    expect(listed, "the stopped replica in /health postgres:nodes").toBeDefined()
    expect(backMs, "opted-in reads back on the replica once it rejoined").toBeDefined()
  }, 180_000)

  it("3. switchover under load: the old primary becomes a replica, writes follow the new one", async () => {
    const logFrom = s.logs.length
    await waitSyncStandby()
    const before = await scrape(s.baseUrl)
    const running = load("ha3", 90_000)
    const watching = watchHealth(s.baseUrl, roles)
    let from = ""
    let to = ""
    let calledAt = 0
    let newPrimaryAt = 0
    // where the service log stood once the old primary was back, read-only: writes sent to it from then on are
    // writes attempted on it after the switch was visible
    let oldIsReplicaLog: number | undefined
    try {
      await sleep(2000)
      calledAt = Date.now()
      ;({ from, to } = await cluster.switchover())
      newPrimaryAt = (await cluster.waitFor(async () => (await findPrimary(cluster))?.name === to && Date.now(), 30_000, `${to} writable`))
      // the old primary restarts as a replica of the new one
      await cluster.waitFor(
        async () => (await cluster.members()).some((m) => m.name === from && m.role !== "leader" && m.state === "running"),
        60_000,
        `${from} running as a replica`
      )
      await cluster.waitFor(async () => (await roles.inRecovery(from)) === true, 30_000, `${from} answering in recovery`)
      oldIsReplicaLog = s.logs.length
      await cluster.waitFor(() => firstWriteAnsweredAfter(running.result, newPrimaryAt), 15_000, "a write after the switchover").catch(() => {})
      await sleep(2000)
    } finally {
      await running.stop()
    }
    // after a settle time the service's view of the nodes is the cluster's
    const settled = await cluster.waitFor(
      async () => {
        const sample = await health(s.baseUrl)
        const primary = sample.nodes.filter((n) => n.role === "primary").map((n) => n.componentId)
        return sample.status === 200 && primary.length === 1 && primary[0] === componentId(cluster, to) && sample
      },
      10_000,
      "/health to pass with the new leader as its only primary"
    ).catch(() => undefined)
    const watch = await watching.stop()
    const result = running.result
    const first = firstWriteAnsweredAfter(result, newPrimaryAt)
    const discoveries = discoveriesSince(before, await scrape(s.baseUrl))
    const port = String(cluster.nodes.find((n) => n.name === to)!.pgPort)
    const discoveryLines = serviceLines(logFrom, /Writer discovery:/)
    const readOnlyRefusals = serviceLines(logFrom, /25006|read-only transaction/i).length
    // a refused write, or health finding its writer in recovery
    const onOldPrimary = serviceLines(oldIsReplicaLog ?? s.logs.length, /25006|read-only transaction|read_only/i)
    await finish(
      "3 switchover",
      "ha3",
      logFrom,
      result,
      `${from} → ${to}: switchover call → first write on the new leader ${first ? first.answeredAt - calledAt : "never"} ms ` +
        `(new leader writable ${newPrimaryAt - calledAt} ms after the call); ${result.typed503} typed 503; ` +
        `/health ${watch.passes}/${watch.samples} pass, ${watch.passWithoutWriter.length} while no node took writes; ` +
        `${discoveriesText(discoveries)}; ${readOnlyRefusals} writes refused as read-only, ` +
        `${onOldPrimary.length} log lines about the read-only old primary once it was back`,
      watch
    )
    expect(first, "a write acknowledged after the new leader took over").toBeDefined()
    expect(settled, "/health passing with the new leader as primary").toBeDefined()
    // one discovery for all the requests in flight, not one each
    expect(discoveries.changed, "db_writer_discoveries_total{result=changed}").toBe(1)
    expect(oldIsReplicaLog, "the old primary back as a replica").toBeDefined()
    expect(onOldPrimary, "writes sent to, or health of, the read-only old primary after the switch was visible").toEqual([])
    expect(discoveryLines.some((line) => line.includes(port)), `a "Writer discovery:" log line naming port ${port}`).toBe(true)
  }, 180_000)

  it("4. leader kill -9 under load: writes resume on the promoted standby, none lost", async () => {
    const logFrom = s.logs.length
    await waitSyncStandby()
    const before = await scrape(s.baseUrl)
    const running = load("ha4", 90_000)
    const watching = watchHealth(s.baseUrl, roles)
    let killed = { name: "", at: 0 }
    let promotedAt = 0
    let promoted = ""
    const candidate = await standby()
    try {
      await sleep(2000)
      killed = await cluster.killLeader()
      promotedAt = await waitWritable(roles, candidate, 60_000)
      promoted = (await waitPrimary(cluster, 10_000, killed.name)).name
      await cluster.waitFor(() => firstWriteSentAfter(running.result, killed.at), 20_000, "a write after the failover").catch(() => {})
      await sleep(2000)
    } finally {
      await running.stop()
    }
    const watch = await watching.stop()
    const result = running.result
    const first = firstWriteSentAfter(result, killed.at)
    const during = result.exchanges.filter((e) => e.answeredAt >= killed.at && (first === undefined || e.startedAt <= first.answeredAt))
    const failoverTyped503 = during.filter((e) => e.outcome === "unavailable").length
    const discoveries = discoveriesSince(before, await scrape(s.baseUrl))
    const port = String(cluster.nodes.find((n) => n.name === promoted)?.pgPort)
    const discoveryLines = serviceLines(logFrom, /Writer discovery:/)
    await finish(
      "4 leader kill -9",
      "ha4",
      logFrom,
      result,
      `${killed.name} killed, ${promoted} writable ${promotedAt - killed.at} ms later; ` +
        `kill → first write ${first ? first.answeredAt - killed.at : "never"} ms, promotion → first write ${
          first ? first.answeredAt - promotedAt : "–"
        } ms; ${failoverTyped503} typed 503 during the failover (${during.length} requests); ` +
        `/health ${watch.passes}/${watch.samples} pass, ${watch.passWithoutWriter.length} while no node took writes; ` +
        discoveriesText(discoveries),
      watch
    )
    expect(first, "a write acknowledged after the kill").toBeDefined()
    expect(promoted, "the synchronous standby promoted").toBe(candidate)
    expect(discoveries.changed, "db_writer_discoveries_total{result=changed}").toBe(1)
    expect(discoveryLines.some((line) => line.includes(port)), `a "Writer discovery:" log line naming port ${port}`).toBe(true)
    // synchronous mode: what any scenario had acknowledged survived the loss of the leader's machine
    const url = cluster.nodeUrl(promoted)
    const everLost: Array<string> = []
    for (const [prefix, references] of acknowledged) {
      const writes = await checkWritesAt(url, prefix, references)
      if (writes.lost + writes.duplicated > 0) everLost.push(`${prefix}: ${writes.lost} lost, ${writes.duplicated} duplicated`)
    }
    expect(everLost, "acknowledged writes of earlier scenarios after the failover").toEqual([])
  }, 180_000)
})

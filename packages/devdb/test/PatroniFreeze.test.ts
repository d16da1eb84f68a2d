// A leader whose PostgreSQL freezes while its Patroni keeps running (SIGSTOP
// of the postmaster, as a stalled disk or a paused VM might): after the thaw
// no acknowledged write may be lost.
import fs from "node:fs"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { missingPatroniTools, startPatroniCluster, type PatroniCluster } from "../src/index.js"
import { procStat, signal, sleep } from "../src/internal/processes.js"

const missing = missingPatroniTools()
const ci = process.env.CI === "true"
if (missing.length > 0 && !ci) {
  console.log(`Patroni freeze test skipped: missing ${missing.join(", ")}; scripts/install-debian-tools.sh installs them`)
}

const FREEZE_MS = 25_000
const WRITERS = 4
/** each writer pauses this long between writes: about 150 acknowledged writes a second in all */
const WRITE_PAUSE_MS = 25
const MAX_ACKNOWLEDGED = 20_000

const open = async (url: string) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000, query_timeout: 3_000 })
  // a frozen or demoted server must fail the client's queries, not the test process
  client.on("error", () => {})
  try {
    await client.connect()
    return client
  } catch (error) {
    void client.end().catch(() => {})
    throw error
  }
}

/** a connection to whichever node takes writes now, or undefined */
const openWriter = async (cluster: PatroniCluster) => {
  for (const node of cluster.nodes) {
    try {
      const client = await open(cluster.nodeUrl(node.name))
      const { rows } = await client.query<{ recovery: boolean }>("SELECT pg_is_in_recovery() AS recovery")
      if (rows[0]?.recovery === false) return { client, node: node.name }
      void client.end().catch(() => {})
    } catch {
      // frozen, down or read-only: the next node
    }
  }
  return undefined
}

/**
 * SIGSTOPs `postmaster` and every process below it (the backends, the WAL
 * sender, the checkpointer): the whole PostgreSQL instance stops answering
 * while its Patroni runs on. The postmaster first, so that it forks nothing
 * that escapes the list. Returns the stopped processes, to SIGCONT.
 */
const freezeTree = (postmaster: number): ReadonlyArray<number> => {
  const frozen: number[] = []
  const visit = (pid: number) => {
    signal(pid, "SIGSTOP")
    frozen.push(pid)
    for (const entry of fs.readdirSync("/proc")) {
      if (/^\d+$/.test(entry) && procStat(Number(entry))?.ppid === pid) visit(Number(entry))
    }
  }
  visit(postmaster)
  return frozen
}

interface Load {
  readonly acknowledged: Array<{ readonly id: number; readonly node: string; readonly at: number }>
  stop(): Promise<void>
}

/**
 * WRITERS loops inserting distinct ids through whichever node takes writes,
 * as an application with a short query timeout would; an id counts as
 * acknowledged when its COMMIT returned.
 */
const startLoad = (cluster: PatroniCluster): Load => {
  const acknowledged: Load["acknowledged"] = []
  let nextId = 1
  let stopping = false
  const loop = async () => {
    let writer: Awaited<ReturnType<typeof openWriter>>
    while (!stopping && acknowledged.length < MAX_ACKNOWLEDGED) {
      writer ??= await openWriter(cluster)
      if (writer === undefined) {
        await sleep(200)
        continue
      }
      const id = nextId++
      try {
        await writer.client.query("INSERT INTO frozen_orders (id, node) VALUES ($1, $2)", [id, writer.node])
        acknowledged.push({ id, node: writer.node, at: Date.now() })
        await sleep(WRITE_PAUSE_MS)
      } catch {
        void writer.client.end().catch(() => {})
        writer = undefined
        await sleep(200)
      }
    }
    if (writer !== undefined) void writer.client.end().catch(() => {})
  }
  const loops = Array.from({ length: WRITERS }, loop)
  return {
    acknowledged,
    stop: async () => {
      stopping = true
      await Promise.all(loops)
    }
  }
}

/** who leads and who follows, polled once a second for `ms`; a line each time it changes */
const watchRoles = async (cluster: PatroniCluster, load: Load, from: number, ms: number, lines: string[]) => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    await sleep(1_000)
    const members = await cluster.members().catch(() => [])
    const roles = members.map((member) => `${member.name} ${member.role} ${member.state}`).join(", ")
    if (!lines.at(-1)?.includes(`: ${roles} (`)) {
      lines.push(`${((Date.now() - from) / 1000).toFixed(0)} s: ${roles} (${load.acknowledged.length} writes acknowledged)`)
    }
  }
}

const healthy = async (cluster: PatroniCluster) => {
  const members = await cluster.members()
  return members.some((m) => m.role === "leader" && m.state === "running") &&
    members.some((m) => m.role === "sync_standby" && m.state === "running")
}

describe.skipIf(missing.length > 0 && !ci)("Patroni: the leader's PostgreSQL frozen for 25 s under load", () => {
  let cluster: PatroniCluster
  const log: string[] = []

  beforeAll(async () => {
    expect(missing, "CI installs patroni, etcd-server and postgresql-15 (scripts/install-debian-tools.sh)").toEqual([])
    cluster = await startPatroniCluster({ log: (line) => log.push(`${new Date().toISOString()} ${line}`) })
  }, 120_000)

  afterAll(async () => {
    await cluster?.destroy()
  }, 60_000)

  it("the standby promoted meanwhile keeps the lead after the thaw, and no acknowledged write is lost", async () => {
    const leader = await cluster.leader()
    const primary = await open(cluster.nodeUrl(leader))
    await primary.query("CREATE TABLE frozen_orders (id int PRIMARY KEY, node text NOT NULL)")
    await primary.end()

    const load = startLoad(cluster)
    await cluster.waitFor(() => load.acknowledged.length >= 100, 10_000, "100 acknowledged writes")
    const timeline: string[] = []
    const frozenAt = Date.now()
    const stopped = freezeTree(cluster.nodes.find((node) => node.name === leader)!.postmasterPid()!)
    try {
      await watchRoles(cluster, load, frozenAt, FREEZE_MS, timeline)
    } finally {
      for (const pid of stopped) signal(pid, "SIGCONT")
    }
    const thawedAt = Date.now()
    timeline.push(`${((thawedAt - frozenAt) / 1000).toFixed(0)} s: thawed`)
    // Writes go on until a leader and a synchronous standby run again, whoever
    // they are (or for 60 s: what was lost is checked either way).
    await watchRoles(cluster, load, frozenAt, 5_000, timeline)
    const recovered = await cluster.waitFor(() => healthy(cluster), 60_000, "a synchronous standby").then(
      () => `${((Date.now() - thawedAt) / 1000).toFixed(0)} s after the thaw`,
      () => "not within 60 s"
    )
    await load.stop()

    const writable = await cluster.waitFor(async () => (await openWriter(cluster)) ?? false, 30_000, "a writable leader")
    const { rows } = await writable.client.query<{ id: number }>("SELECT id FROM frozen_orders")
    await writable.client.end()
    const present = new Set(rows.map((row) => row.id))
    const lost = load.acknowledged.filter((write) => !present.has(write.id))
    const byNode = (list: ReadonlyArray<{ readonly node: string }>) =>
      cluster.nodes.map((node) => `${node.name} ${list.filter((write) => write.node === node.name).length}`).join(", ")
    console.log(
      `froze ${leader}'s PostgreSQL (${stopped.length} processes) for ${thawedAt - frozenAt} ms; ` +
        `${load.acknowledged.length} writes acknowledged (${byNode(load.acknowledged)}), ${lost.length} lost ` +
        `(${byNode(lost)}); leader afterwards ${writable.node}, with a synchronous standby ${recovered}\n` +
        timeline.join("\n")
    )
    // Patroni's own account of who held the leader key, from the freeze on.
    const since = new Date(frozenAt - 1_000).toISOString()
    const decisions = log.filter((line) =>
      line >= since && /^\S+ node\d: .*(lock|leader|demot|promot|rewind|Loop time)/i.test(line)
    )
    const promoted = load.acknowledged.filter((write) => write.node !== leader && write.at < thawedAt)
    // The scenario happened: the standby was promoted during the freeze and acknowledged writes.
    expect(promoted.length, timeline.join("\n")).toBeGreaterThan(0)
    expect(lost.map((write) => write.id), `acknowledged writes lost\n${decisions.slice(0, 60).join("\n")}`).toEqual([])
    expect(writable.node, "the promoted standby still leads").not.toBe(leader)
  }, 180_000)
})

// A real HA cluster (etcd + two Patroni nodes, PostgreSQL 15 from Debian) in
// synchronous mode: election, replication, failover after a machine loss
// without losing an acknowledged write, rejoin, switchover, and cleanup.
import { execFile } from "node:child_process"
import fs from "node:fs"
import { inspect, promisify } from "node:util"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  findPrimary,
  missingPatroniTools,
  startPatroniCluster,
  type PatroniCluster,
  type PatroniMember
} from "../src/index.js"
import { isGone, waitGone } from "../src/internal/processes.js"
import { processesOf, runExitFixture } from "./PatroniTestSupport.js"

const missing = missingPatroniTools()
const ci = process.env.CI === "true"
if (missing.length > 0 && !ci) {
  console.log(`Patroni tests skipped: missing ${missing.join(", ")}; scripts/install-debian-tools.sh installs them`)
}

const connect = async (url: string) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 10_000 })
  // a killed server must fail the client's queries, not the test process
  client.on("error", () => {})
  await client.connect()
  return client
}

const query = async <R extends pg.QueryResultRow>(url: string, sql: string, values: ReadonlyArray<unknown> = []) => {
  const client = await connect(url)
  try {
    return (await client.query<R>(sql, [...values])).rows
  } finally {
    await client.end().catch(() => {})
  }
}

const primaryName = async (cluster: PatroniCluster) => {
  const primary = await findPrimary(cluster)
  if (primary === undefined) throw new Error("no node accepts writes")
  return primary.name
}

const standbyOf = (members: ReadonlyArray<PatroniMember>) => members.find((member) => member.role !== "leader")?.name

/**
 * Runs a query through libpq with the cluster's multi-host URL (node-postgres
 * reads only the first host). The password travels in the environment, not
 * on a command line other users can read.
 */
const psql = async (url: string, sql: string) => {
  const match = /^(postgresql:\/\/[^:]+):([^@]+)(@.*)$/.exec(url)
  if (match === null) throw new Error("unexpected URL shape")
  const [, head, password, tail] = match as unknown as [string, string, string, string]
  const { stdout } = await promisify(execFile)(
    "/usr/lib/postgresql/15/bin/psql",
    ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", `${head}${tail}`, "-c", sql],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        PGPASSWORD: decodeURIComponent(password),
        PGCONNECT_TIMEOUT: "5"
      },
      timeout: 15_000
    }
  )
  return stdout.trim()
}

describe.skipIf(missing.length > 0 && !ci)("Patroni cluster", () => {
  let cluster: PatroniCluster

  beforeAll(async () => {
    expect(missing, "CI installs patroni, etcd-server and postgresql-15 (scripts/install-debian-tools.sh)").toEqual([])
    const started = Date.now()
    cluster = await startPatroniCluster()
    console.log(`Patroni cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }, 120_000)

  afterAll(async () => {
    await cluster?.destroy()
  }, 60_000)

  it("elects a leader and a synchronous standby, on loopback", async () => {
    const members = await cluster.members()
    expect(members.map(({ role, state }) => ({ role, state })).sort((a, b) => a.role.localeCompare(b.role))).toEqual([
      { role: "leader", state: "running" },
      { role: "sync_standby", state: "running" }
    ])
    const leader = await cluster.leader()
    expect(await primaryName(cluster)).toBe(leader)
    for (const node of cluster.nodes) {
      expect(node.host).toBe("127.0.0.1")
      expect(node.patroniPid).toBeGreaterThan(0)
      expect(node.postmasterPid()).toBeGreaterThan(0)
    }
    // the URL names every node and asks libpq for the writable one
    expect(cluster.url).toContain(cluster.nodes.map((node) => `127.0.0.1:${node.pgPort}`).join(","))
    expect(cluster.url).toMatch(/\?target_session_attrs=read-write$/)
    expect(await psql(cluster.url, "SELECT inet_server_port()")).toBe(
      String(cluster.nodes.find((node) => node.name === leader)?.pgPort)
    )
    // the password stays out of what a test prints
    const password = /^postgresql:\/\/[^:]+:([^@]+)@/.exec(cluster.url)?.[1] as string
    expect(`${JSON.stringify(cluster)} ${inspect(cluster)}`).not.toContain(password)
  })

  it("replicates a row written on the primary to the standby", async () => {
    const primary = await primaryName(cluster)
    const standby = standbyOf(await cluster.members()) as string
    await query(cluster.nodeUrl(primary), "CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)")
    await query(cluster.nodeUrl(primary), "INSERT INTO orders VALUES (1, 'first')")
    const rows = await cluster.waitFor(
      async () => {
        const found = await query<{ note: string }>(cluster.nodeUrl(standby), "SELECT note FROM orders WHERE id = 1")
        return found.length > 0 && found
      },
      10_000,
      "the row on the standby"
    )
    expect(rows).toEqual([{ note: "first" }])
  })

  it("holds rows back on a standby whose replay is paused, until it resumes", async () => {
    const primary = await primaryName(cluster)
    const standby = standbyOf(await cluster.members()) as string
    await cluster.pauseReplay(standby)
    try {
      // synchronous commit waits for the standby's flush, not its replay
      await query(cluster.nodeUrl(primary), "INSERT INTO orders VALUES (2, 'while paused')")
      // longer than Patroni's loop (loop_wait 2 s), which would resume the replay outside maintenance mode
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      expect(await query(cluster.nodeUrl(standby), "SELECT id FROM orders WHERE id = 2")).toEqual([])
    } finally {
      await cluster.resumeReplay(standby)
    }
    await cluster.waitFor(
      async () => (await query(cluster.nodeUrl(standby), "SELECT id FROM orders WHERE id = 2")).length === 1,
      10_000,
      "the row after replay resumed"
    )
  })

  it("promotes the synchronous standby when the leader's machine is lost, losing no acknowledged write", async () => {
    const oldLeader = await cluster.leader()
    const standby = standbyOf(await cluster.members()) as string
    // a writer that keeps committing until the kill cuts it off
    const acknowledged: number[] = []
    const writer = await connect(cluster.nodeUrl(oldLeader))
    const writing = (async () => {
      for (let id = 1000; ; id++) {
        try {
          await writer.query("INSERT INTO orders VALUES ($1, 'before the kill')", [id])
        } catch {
          return
        }
        acknowledged.push(id)
      }
    })()
    await cluster.waitFor(() => acknowledged.length >= 50, 10_000, "50 acknowledged writes")

    const { name, at } = await cluster.killLeader()
    expect(name).toBe(oldLeader)
    await writing
    await writer.end().catch(() => {})
    const newLeader = await cluster.waitFor(
      async () => {
        const members = await cluster.members()
        const leader = members.find((member) => member.role === "leader" && member.state === "running")
        return leader?.name !== undefined && leader.name !== oldLeader && (await primaryName(cluster)) === leader.name
          ? leader.name
          : undefined
      },
      45_000,
      "a new writable leader"
    )
    const promotionMs = Date.now() - at
    console.log(
      `failover: ${oldLeader} killed, ${newLeader} writable ${(promotionMs / 1000).toFixed(1)} s later ` +
        `(ttl 10, loop_wait 2, retry_timeout 5); ${acknowledged.length} writes acknowledged before the kill`
    )
    expect(newLeader).toBe(standby)
    expect(promotionMs).toBeLessThan(30_000)

    const present = await query<{ id: number }>(cluster.nodeUrl(newLeader), "SELECT id FROM orders WHERE id >= 1000")
    const ids = new Set(present.map((row) => row.id))
    expect(acknowledged.filter((id) => !ids.has(id)), "acknowledged writes lost").toEqual([])
    expect(await query(cluster.nodeUrl(newLeader), "SELECT note FROM orders WHERE id = 1")).toEqual([{ note: "first" }])
    await query(cluster.nodeUrl(newLeader), "INSERT INTO orders VALUES (3, 'after the failover')")
    // libpq follows the writer through the same URL
    expect(await psql(cluster.url, "SELECT inet_server_port()")).toBe(
      String(cluster.nodes.find((node) => node.name === newLeader)?.pgPort)
    )
  }, 90_000)

  it("takes the lost node back as a replica and switches over to it", async () => {
    const leader = await cluster.leader()
    const lost = cluster.nodes.find((node) => node.name !== leader)?.name as string
    await cluster.startNode(lost)
    await cluster.waitFor(
      async () => (await cluster.members()).find((member) => member.name === lost)?.role === "sync_standby",
      30_000,
      `${lost} as synchronous standby`
    )
    expect(await query(cluster.nodeUrl(lost), "SELECT count(*)::int AS n FROM orders WHERE id = 3")).toEqual([{ n: 1 }])

    const started = Date.now()
    expect(await cluster.switchover(lost)).toEqual({ from: leader, to: lost })
    console.log(`switchover ${leader} -> ${lost} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    await cluster.waitFor(async () => (await primaryName(cluster)) === lost, 10_000, `${lost} writable`)
  }, 90_000)

  it("destroy() stops every process it started and removes its directory", async () => {
    const pids = processesOf(cluster.dir)
    // etcd, one Patroni and one postmaster per node, plus backends
    expect(pids.length).toBeGreaterThanOrEqual(1 + 2 * cluster.nodes.length)
    const started = Date.now()
    await cluster.destroy()
    console.log(`destroy() took ${((Date.now() - started) / 1000).toFixed(1)} s`)
    expect(pids.filter((pid) => !isGone(pid))).toEqual([])
    expect(fs.existsSync(cluster.dir)).toBe(false)
  }, 60_000)

  it("leaves nothing running when the process exits without destroy()", async () => {
    const { dir, pids } = (await runExitFixture("./PatroniExitFixture.ts")) as { dir: string; pids: number[] }
    expect(pids.length).toBeGreaterThanOrEqual(5)
    await waitGone(pids, 10_000)
    expect(pids.filter((pid) => !isGone(pid))).toEqual([])
    expect(fs.existsSync(dir)).toBe(false)
  }, 120_000)
})

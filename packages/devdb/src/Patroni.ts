// A throw-away high-availability PostgreSQL cluster: one etcd and two or three
// Patroni nodes running Debian's PostgreSQL 15 (scripts/install-debian-tools.sh
// installs all three), everything on loopback ports that were free.
//
// Patroni, etcd and PostgreSQL run as the postgres OS user when this process
// is root (PostgreSQL refuses root), as the current user otherwise. Patroni
// starts each postmaster detached from itself (its own session, adopted by
// init) so that a Patroni restart leaves PostgreSQL running; so postmasters
// are found through their postmaster.pid, and stopping Patroni is not enough
// to be rid of them.
import { randomBytes } from "node:crypto"
import fs from "node:fs"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { inspect } from "node:util"
import pg from "pg"
import { freePort } from "./EmbeddedPostgres.js"
import {
  canTraverse,
  ensurePostgresUser,
  isGone,
  isRunning,
  killTree,
  onExit,
  procStat,
  signal,
  sleep,
  spawnProc,
  terminate,
  waitGone,
  type OsUser,
  type Proc
} from "./internal/processes.js"

export interface PatroniClusterOptions {
  /** default 2 */
  readonly nodes?: 2 | 3
  /** Patroni's synchronous_mode: a commit is acknowledged once a standby has it; default true */
  readonly synchronousMode?: boolean
  /** etcd, Patroni and PostgreSQL output prefixed with the process (`etcd:`, `node0:`), and devdb's notes (`devdb:`) */
  readonly log?: (line: string) => void
  /** where the cluster's own fresh directory is made (removed by destroy()); default: tmpdir */
  readonly dataDir?: string
}

export interface PatroniNode {
  readonly name: string
  readonly host: "127.0.0.1"
  readonly pgPort: number
  readonly restPort: number
  /** undefined while the node is stopped or killed */
  readonly patroniPid: number | undefined
  /** the node's running postmaster, whether or not its Patroni runs */
  postmasterPid(): number | undefined
}

export interface PatroniMember {
  readonly name: string
  /** `leader`, `sync_standby` or `replica` */
  readonly role: string
  /** Patroni's member state: `running`, `starting`, `stopped`, `creating replica`, … */
  readonly state: string
  /** bytes of WAL behind the leader; null for the leader, or when Patroni does not know */
  readonly lag: number | null
}

export type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>

export interface PatroniCluster {
  readonly nodes: ReadonlyArray<PatroniNode>
  /** the application role, which owns `database` */
  readonly user: string
  readonly database: string
  /** the cluster's directory, removed by destroy() */
  readonly dir: string
  /** libpq multi-host connection string for the application role that only a writable node accepts; never log it */
  readonly url: string
  /** connection string for the application role on one node; never log it */
  nodeUrl(name: string): string
  /** the leader's name as Patroni sees it; rejects while there is none */
  leader(): Promise<string>
  members(): Promise<ReadonlyArray<PatroniMember>>
  /**
   * SIGKILL of the leader's Patroni and its PostgreSQL processes at once, as a machine loss; resolves once they
   * are gone, with `at` the Date.now() of the kill
   */
  killLeader(): Promise<{ readonly name: string; readonly at: number }>
  /** a planned switchover to `to` (default: Patroni's choice); resolves once the new leader runs */
  switchover(to?: string): Promise<{ readonly from: string; readonly to: string }>
  /**
   * pauses WAL replay on a replica, which then falls behind while still receiving WAL. Patroni resumes a paused
   * replay by itself, so it stays in maintenance mode (no automatic failover) until every paused replay resumes.
   */
  pauseReplay(name: string): Promise<void>
  resumeReplay(name: string): Promise<void>
  /** stops the node's Patroni, which shuts its PostgreSQL down (a leader hands over) */
  stopNode(name: string): Promise<void>
  /** starts the node's Patroni again and waits until its PostgreSQL runs, as a replica if another node leads */
  startNode(name: string): Promise<void>
  /**
   * polls `predicate` until it returns a truthy value and returns that; a rejection counts as not yet.
   * After timeoutMs it rejects with the last rejection and the processes' last log lines.
   */
  waitFor<T>(predicate: () => T | Promise<T>, timeoutMs: number, what?: string): Promise<Truthy<T>>
  /** stops every process the cluster started (Patroni, then PostgreSQL, then etcd) and removes its directory */
  destroy(): Promise<void>
}

const PG_BIN_DIR = "/usr/lib/postgresql/15/bin"

const START_TIMEOUT_MS = 90_000
const ETCD_READY_TIMEOUT_MS = 15_000
const NODE_START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000
const KILL_WAIT_MS = 10_000
const SWITCHOVER_TIMEOUT_MS = 60_000
const MAINTENANCE_TIMEOUT_MS = 15_000
const REST_TIMEOUT_MS = 2_000
const POLL_MS = 100
const LOG_TAIL_LINES = 30

// Only what the programs need: the parent's environment may hold secrets, and
// Patroni and etcd read settings from PATRONI_* and ETCD_* variables.
const childEnv = (home: string) => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: home,
  LANG: "C.UTF-8",
  LC_ALL: "C.UTF-8"
})

const secret = () => randomBytes(24).toString("base64url")

const findExecutable = (name: string) =>
  [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/sbin", "/usr/bin"]
    .map((dir) => path.join(dir, name))
    .find((file) => {
      try {
        fs.accessSync(file, fs.constants.X_OK)
        return true
      } catch {
        return false
      }
    })

/** what is missing to start a Patroni cluster here, each with the Debian package that provides it */
export const missingPatroniTools = (): ReadonlyArray<string> => {
  const missing: string[] = []
  if (findExecutable("patroni") === undefined) missing.push("patroni (package patroni)")
  if (findExecutable("etcd") === undefined) missing.push("etcd (package etcd-server)")
  if (!fs.existsSync(path.join(PG_BIN_DIR, "postgres"))) {
    missing.push(`${PG_BIN_DIR}/postgres (package postgresql-15)`)
  }
  return missing
}

// ---------------------------------------------------------------- processes

/** the postmaster running on dataDir, per its postmaster.pid, checked against the process's command line */
const postmasterOf = (dataDir: string): number | undefined => {
  let pid: number
  try {
    pid = Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n", 1)[0])
  } catch {
    return undefined
  }
  if (!Number.isInteger(pid) || pid <= 0 || isGone(pid) || procStat(pid)?.comm !== "postgres") return undefined
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
    return argv.includes(dataDir) ? pid : undefined
  } catch {
    return undefined
  }
}

/** whom the cluster's processes run as: undefined for this process's own user */
const runAs = (): OsUser | undefined => (process.getuid?.() === 0 ? ensurePostgresUser() : undefined)

const runningPid = (proc: Proc | undefined) =>
  proc !== undefined && isRunning(proc.child) ? proc.child.pid : undefined

const canConnect = async (url: string) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000, query_timeout: 5_000 })
  client.on("error", () => {})
  try {
    await client.connect()
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

// ------------------------------------------------------------------ cluster

interface NodeState {
  readonly name: string
  readonly pgPort: number
  readonly restPort: number
  readonly dir: string
  readonly dataDir: string
  readonly config: string
  /** output of every Patroni run of this node, and of the postmasters they started */
  readonly tail: string[]
  patroni: Proc | undefined
}

interface Secrets {
  readonly superuser: string
  readonly replication: string
  readonly app: string
  readonly rest: string
}

const SUPERUSER = "postgres"
const REPLICATION_USER = "replicator"
const APP = "app"
const REST_USER = "devdb"

interface Layout {
  readonly dir: string
  readonly user: OsUser | undefined
  readonly scope: string
  readonly etcdClientPort: number
  readonly etcdPeerPort: number
  readonly synchronousMode: boolean
  readonly log: ((line: string) => void) | undefined
}

// Clusters whose processes the exit hook must kill if this process exits
// without destroy(): it touches nothing else.
const liveClusters = new Set<Cluster>()
let exitHook: (() => void) | undefined

const installExitHook = () => {
  exitHook ??= () => {
    for (const cluster of liveClusters) cluster.killNow()
  }
  onExit(exitHook)
}

const patroniConfig = (layout: Layout, node: NodeState, secrets: Secrets) => ({
  scope: layout.scope,
  namespace: "/devdb/",
  name: node.name,
  restapi: {
    listen: `127.0.0.1:${node.restPort}`,
    connect_address: `127.0.0.1:${node.restPort}`,
    // GETs stay open; the unsafe endpoints (switchover, restart, …) want this
    authentication: { username: REST_USER, password: secrets.rest }
  },
  // etcd's v2 API, not `etcd3`: Debian's Patroni 3.0.2 renews the leader key
  // through etcd3 with an unconditional put (fixed in Patroni 3.0.3, PR
  // #2689), so a leader whose loop was stuck longer than the ttl (its
  // PostgreSQL frozen) takes the key back from the standby promoted meanwhile,
  // which is rewound and loses the writes it acknowledged. Through v2 the
  // renewal is a compare-and-swap on the key's owner: the stuck leader finds
  // the key taken and demotes itself instead. (Patroni.test.ts freezes a
  // leader to show it.)
  etcd: { hosts: [`127.0.0.1:${layout.etcdClientPort}`] },
  bootstrap: {
    dcs: {
      ttl: 10,
      loop_wait: 2,
      retry_timeout: 5,
      synchronous_mode: layout.synchronousMode,
      // a killed leader comes back as a replica of its successor (Patroni turns wal_log_hints on for pg_rewind)
      postgresql: {
        use_pg_rewind: true,
        remove_data_directory_on_rewind_failure: true,
        remove_data_directory_on_diverged_timelines: true
      }
    },
    // en_US.UTF-8 and friends may be missing; C always exists
    initdb: [{ encoding: "UTF8" }, { locale: "C" }]
  },
  postgresql: {
    listen: `127.0.0.1:${node.pgPort}`,
    connect_address: `127.0.0.1:${node.pgPort}`,
    data_dir: node.dataDir,
    bin_dir: PG_BIN_DIR,
    pgpass: path.join(node.dir, "pgpass"),
    authentication: {
      superuser: { username: SUPERUSER, password: secrets.superuser },
      replication: { username: REPLICATION_USER, password: secrets.replication }
    },
    parameters: {
      // the default, /var/run/postgresql, is shared with the system's clusters
      unix_socket_directories: node.dir,
      // speed for data nobody keeps; a machine crash is not simulated, process kills keep the page cache
      fsync: "off"
    },
    pg_hba: [
      "local all all peer",
      `host replication ${REPLICATION_USER} 127.0.0.1/32 scram-sha-256`,
      "host all all 127.0.0.1/32 scram-sha-256"
    ]
  }
})

interface RestCluster {
  readonly members?: ReadonlyArray<{ name: string; role: string; state?: string; lag?: number | string }>
}

class Cluster implements PatroniCluster {
  readonly user = APP
  readonly database = APP
  readonly nodes: ReadonlyArray<PatroniNode>
  readonly #layout: Layout
  readonly #secrets: Secrets
  readonly #nodes: ReadonlyArray<NodeState>
  #etcd: Proc | undefined
  readonly #etcdTail: string[] = []
  #destroyed: Promise<void> | undefined
  readonly #pausedReplays = new Set<string>()

  constructor(layout: Layout, nodes: ReadonlyArray<NodeState>, secrets: Secrets) {
    this.#layout = layout
    this.#nodes = nodes
    this.#secrets = secrets
    this.nodes = nodes.map((node) => ({
      name: node.name,
      host: "127.0.0.1" as const,
      pgPort: node.pgPort,
      restPort: node.restPort,
      get patroniPid() {
        return runningPid(node.patroni)
      },
      postmasterPid: () => postmasterOf(node.dataDir)
    }))
  }

  get dir() {
    return this.#layout.dir
  }

  get url() {
    return `${this.#appUrl(this.#nodes.map((node) => node.pgPort))}?target_session_attrs=read-write`
  }

  nodeUrl(name: string) {
    return this.#appUrl([this.#node(name).pgPort])
  }

  async leader() {
    const leader = (await this.members()).find((member) => member.role === "leader")
    if (leader === undefined) throw new Error("the cluster has no leader")
    return leader.name
  }

  async members(): Promise<ReadonlyArray<PatroniMember>> {
    const { members = [] } = (await this.#rest("GET", "/cluster")) as RestCluster
    return members.map(({ name, role, state, lag }) => ({
      name,
      role,
      state: state ?? "",
      lag: typeof lag === "number" ? lag : null
    }))
  }

  async killLeader() {
    const name = await this.leader()
    const node = this.#node(name)
    const patroni = runningPid(node.patroni)
    // Patroni stopped first, so that it cannot start a postmaster that the kill would miss
    if (patroni !== undefined) signal(patroni, "SIGSTOP")
    const postmaster = postmasterOf(node.dataDir)
    const killed = [
      ...(patroni !== undefined ? killTree(patroni) : []),
      ...(postmaster !== undefined ? killTree(postmaster) : [])
    ]
    const at = Date.now()
    this.#note(`killed ${name} (Patroni and PostgreSQL, ${killed.length} processes)`)
    if (!(await waitGone(killed, KILL_WAIT_MS))) {
      throw new Error(`processes of ${name} still run ${KILL_WAIT_MS / 1000} s after SIGKILL`)
    }
    return { name, at }
  }

  async switchover(to?: string) {
    const from = await this.leader()
    // Patroni refuses (412) a switchover in synchronous mode until a standby is synchronous,
    // which takes a loop or two after a node (re)joins
    await this.waitFor(
      async () => {
        const members = await this.members()
        return (
          (!this.#layout.synchronousMode || members.some((m) => m.role === "sync_standby" && m.state === "running")) &&
          (to === undefined || members.some((m) => m.name === to && m.state === "running"))
        )
      },
      SWITCHOVER_TIMEOUT_MS,
      `a ${this.#layout.synchronousMode ? "synchronous standby" : "replica"} to switch over to`
    )
    const response = await this.#rest("POST", "/switchover", { leader: from, ...(to ? { candidate: to } : {}) }, from)
    this.#note(`switchover from ${from}: ${String(response).trim()}`)
    const leader = await this.waitFor(
      async () => {
        const members = await this.members()
        const leader = members.find((member) => member.role === "leader" && member.state === "running")
        return leader !== undefined && leader.name !== from && (to === undefined || leader.name === to) && leader.name
      },
      SWITCHOVER_TIMEOUT_MS,
      `a switchover from ${from}${to ? ` to ${to}` : ""}`
    )
    return { from, to: leader }
  }

  async pauseReplay(name: string) {
    this.#node(name) // throws for a name that is not a node
    if (this.#pausedReplays.size === 0) await this.#maintenance(true)
    this.#pausedReplays.add(name)
    try {
      await this.#superuserQuery(name, "SELECT pg_wal_replay_pause()")
    } catch (error) {
      await this.resumeReplay(name)
      throw error
    }
  }

  async resumeReplay(name: string) {
    this.#node(name) // throws for a name that is not a node
    if (!this.#pausedReplays.delete(name)) return
    await this.#superuserQuery(name, "SELECT pg_wal_replay_resume()").catch(() => {})
    if (this.#pausedReplays.size === 0) await this.#maintenance(false)
  }

  async stopNode(name: string) {
    await this.#stopPatroni(this.#node(name))
  }

  async startNode(name: string) {
    const node = this.#node(name)
    if (runningPid(node.patroni) !== undefined) return
    const patroni = this.#spawnPatroni(node)
    await this.waitFor(
      async () => {
        const member = (await this.members()).find((candidate) => candidate.name === name)
        return member?.state === "running"
      },
      NODE_START_TIMEOUT_MS,
      `${name} to run again`,
      () => (isRunning(patroni.child) ? undefined : "its Patroni exited")
    )
  }

  async waitFor<T>(
    predicate: () => T | Promise<T>,
    timeoutMs: number,
    what = "the condition",
    fatal?: () => string | undefined
  ): Promise<Truthy<T>> {
    try {
      return await this.poll(predicate, timeoutMs, what, fatal)
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.tails()}`, { cause: error })
    }
  }

  /** waitFor without the log tails; `fatal` names a reason to give up at once */
  async poll<T>(
    predicate: () => T | Promise<T>,
    timeoutMs: number,
    what: string,
    fatal: () => string | undefined = () => undefined
  ): Promise<Truthy<T>> {
    const deadline = Date.now() + timeoutMs
    let lastError: unknown
    for (;;) {
      try {
        const value = await predicate()
        if (value) return value as Truthy<T>
      } catch (error) {
        lastError = error
      }
      const reason = fatal()
      if (reason !== undefined) throw new Error(`gave up waiting for ${what}: ${reason}`)
      if (Date.now() >= deadline) {
        const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : ""
        throw new Error(`waited ${timeoutMs / 1000} s for ${what} in vain${why}`)
      }
      await sleep(POLL_MS)
    }
  }

  destroy() {
    this.#destroyed ??= this.#destroy()
    return this.#destroyed
  }

  async #destroy() {
    await Promise.all(this.#nodes.map((node) => this.#stopPatroni(node)))
    if (this.#etcd !== undefined && !(await terminate(this.#etcd, "SIGTERM", STOP_TIMEOUT_MS))) {
      this.#note(`etcd did not stop within ${STOP_TIMEOUT_MS / 1000} s; killed it`)
    }
    await fsp.rm(this.#layout.dir, { recursive: true, force: true })
    liveClusters.delete(this)
  }

  /** for the exit hook: SIGKILLs everything at once and removes the directory, synchronously */
  killNow() {
    const pids = [
      ...this.#nodes.map((node) => runningPid(node.patroni)),
      ...this.#nodes.map((node) => postmasterOf(node.dataDir)),
      runningPid(this.#etcd)
    ]
    for (const pid of pids) if (pid !== undefined) killTree(pid)
    try {
      fs.rmSync(this.#layout.dir, { recursive: true, force: true })
    } catch {
      // best effort while the process is exiting
    }
  }

  /** every process's last log lines, for error messages */
  tails() {
    const block = (title: string, lines: ReadonlyArray<string>) =>
      `--- ${title}, last ${lines.length} lines:\n${lines.join("\n")}`
    return [block("etcd", this.#etcdTail), ...this.#nodes.map((node) => block(node.name, node.tail))].join("\n")
  }

  async startEtcd(timeoutMs: number) {
    const { etcdClientPort: client, etcdPeerPort: peer } = this.#layout
    const dataDir = path.join(this.#layout.dir, "etcd")
    this.#etcd = this.#spawn("etcd", this.#etcdTail, findExecutable("etcd") ?? "etcd", [
      "--name=etcd0",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${client}`,
      `--advertise-client-urls=http://127.0.0.1:${client}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=etcd0=http://127.0.0.1:${peer}`,
      `--initial-cluster-token=${this.#layout.scope}`,
      "--initial-cluster-state=new",
      // Patroni's `etcd` (v2) DCS; see patroniConfig
      "--enable-v2=true"
    ])
    const etcd = this.#etcd
    await this.poll(
      async () => {
        const response = await fetch(`http://127.0.0.1:${client}/health`, {
          signal: AbortSignal.timeout(REST_TIMEOUT_MS)
        })
        return response.ok && ((await response.json()) as { health?: string }).health === "true"
      },
      timeoutMs,
      "etcd to answer",
      () => (isRunning(etcd.child) ? undefined : "etcd exited")
    )
  }

  async writeConfigs() {
    for (const node of this.#nodes) {
      await this.#mkdir(node.dir)
      // JSON is YAML; the file holds passwords
      await fsp.writeFile(node.config, JSON.stringify(patroniConfig(this.#layout, node, this.#secrets), null, 2), {
        mode: 0o600
      })
      await this.#own(node.config)
    }
  }

  startAllNodes() {
    for (const node of this.#nodes) this.#spawnPatroni(node)
  }

  /** resolves once every node runs and, in synchronous mode, one of them is the synchronous standby */
  async waitHealthy(timeoutMs: number) {
    await this.poll(
      async () => {
        const members = await this.members()
        const running = members.filter((member) => member.state === "running")
        return (
          running.length === this.#nodes.length &&
          running.some((member) => member.role === "leader") &&
          (!this.#layout.synchronousMode || running.some((member) => member.role === "sync_standby"))
        )
      },
      timeoutMs,
      `a leader${this.#layout.synchronousMode ? " and a synchronous standby" : " and its replicas"}`,
      () => {
        const exited = this.#nodes.find((node) => runningPid(node.patroni) === undefined)
        return exited && `Patroni of ${exited.name} exited`
      }
    )
  }

  async createAppDatabase(timeoutMs: number) {
    const leader = await this.leader()
    await this.#superuserQuery(
      leader,
      // the statement would carry the password into the server log if it failed
      "SET log_min_error_statement = panic",
      `CREATE ROLE ${APP} LOGIN PASSWORD '${this.#secrets.app}'`,
      `CREATE DATABASE ${APP} OWNER ${APP}`
    )
    // a synchronous commit is on the standby's disk, not yet replayed, so nodeUrl() could still fail there
    await this.poll(
      async () => (await Promise.all(this.#nodes.map((node) => canConnect(this.nodeUrl(node.name))))).every(Boolean),
      timeoutMs,
      `database ${APP} on every node`
    )
  }

  /** Patroni's pause, set in etcd and awaited until every running node acts on it */
  async #maintenance(pause: boolean) {
    await this.#rest("PATCH", "/config", { pause })
    await this.waitFor(
      async () => {
        const running = this.#nodes.filter((node) => runningPid(node.patroni) !== undefined)
        const views = await Promise.all(running.map((node) => this.#rest("GET", "/patroni", undefined, node.name)))
        return views.every((view) => ((view as { pause?: boolean }).pause === true) === pause)
      },
      MAINTENANCE_TIMEOUT_MS,
      `Patroni to ${pause ? "enter" : "leave"} maintenance mode`
    )
  }

  /** The app's connection string to the nodes on these loopback ports (libpq's host list). */
  #appUrl(ports: ReadonlyArray<number>) {
    const first = `127.0.0.1:${ports[0]}`
    const url = new URL(`postgresql://${first}/${APP}`)
    url.username = APP
    url.password = this.#secrets.app
    // URL holds one host; libpq's multi-host form lists the others after it.
    const others = ports.slice(1).map((port) => `,127.0.0.1:${port}`).join("")
    return url.href.replace(`@${first}/`, `@${first}${others}/`)
  }

  #node(name: string) {
    const node = this.#nodes.find((candidate) => candidate.name === name)
    if (node === undefined) throw new Error(`no node ${name} (nodes: ${this.#nodes.map((n) => n.name).join(", ")})`)
    return node
  }

  #note(line: string) {
    this.#layout.log?.(`devdb: ${line}`)
  }

  async #mkdir(dir: string) {
    await fsp.mkdir(dir, { mode: 0o700 })
    await this.#own(dir)
  }

  async #own(file: string) {
    const { user } = this.#layout
    if (user !== undefined) await fsp.chown(file, user.uid, user.gid)
  }

  #spawn(label: string, tail: string[], file: string, args: ReadonlyArray<string>): Proc {
    const { user, dir } = this.#layout
    return spawnProc(file, args, {
      name: file,
      cwd: dir,
      env: childEnv(dir),
      uid: user?.uid,
      gid: user?.gid,
      tail,
      tailLines: LOG_TAIL_LINES,
      onLine: (line) => this.#layout.log?.(`${label}: ${line}`)
    })
  }

  #spawnPatroni(node: NodeState) {
    node.patroni = this.#spawn(node.name, node.tail, findExecutable("patroni") ?? "patroni", [node.config])
    return node.patroni
  }

  /** SIGTERM to Patroni, which stops its PostgreSQL; what outlives the timeout, or Patroni, is killed */
  async #stopPatroni(node: NodeState) {
    if (node.patroni !== undefined && !(await terminate(node.patroni, "SIGTERM", STOP_TIMEOUT_MS))) {
      this.#note(`${node.name}: Patroni did not stop within ${STOP_TIMEOUT_MS / 1000} s; killed it`)
    }
    const postmaster = postmasterOf(node.dataDir)
    if (postmaster !== undefined) {
      this.#note(`${node.name}: PostgreSQL outlived its Patroni; killing it`)
      if (!(await waitGone(killTree(postmaster), KILL_WAIT_MS))) {
        throw new Error(`PostgreSQL of ${node.name} still runs ${KILL_WAIT_MS / 1000} s after SIGKILL`)
      }
    }
  }

  /** a Patroni REST call, to `to` or else to each node whose Patroni runs until one answers */
  async #rest(method: "GET" | "POST" | "PATCH", route: string, body?: unknown, to?: string): Promise<unknown> {
    const targets =
      to !== undefined ? [this.#node(to)] : this.#nodes.filter((node) => runningPid(node.patroni) !== undefined)
    let lastError: unknown = new Error("no Patroni runs")
    for (const node of targets) {
      try {
        const response = await fetch(`http://127.0.0.1:${node.restPort}${route}`, {
          method,
          signal: AbortSignal.timeout(method === "POST" ? SWITCHOVER_TIMEOUT_MS : REST_TIMEOUT_MS),
          ...(body === undefined
            ? {}
            : {
                body: JSON.stringify(body),
                headers: {
                  "content-type": "application/json",
                  authorization: `Basic ${Buffer.from(`${REST_USER}:${this.#secrets.rest}`).toString("base64")}`
                }
              })
        })
        const text = await response.text()
        if (!response.ok) throw new Error(`${method} ${route} on ${node.name}: ${response.status} ${text.trim()}`)
        return response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text
      } catch (error) {
        lastError = error
      }
    }
    throw lastError
  }

  async #superuserQuery(name: string, ...statements: ReadonlyArray<string>) {
    const node = this.#node(name)
    const client = new pg.Client({
      host: "127.0.0.1",
      port: node.pgPort,
      user: SUPERUSER,
      password: this.#secrets.superuser,
      database: "postgres",
      connectionTimeoutMillis: 5_000,
      query_timeout: 30_000
    })
    client.on("error", () => {})
    try {
      await client.connect()
      for (const statement of statements) await client.query(statement)
    } finally {
      await client.end().catch(() => {})
    }
  }

  [inspect.custom]() {
    const nodes = this.#nodes.map((node) => `${node.name} (pg ${node.pgPort}, rest ${node.restPort})`).join(", ")
    return `PatroniCluster { dir: '${this.dir}', nodes: ${nodes} }`
  }

  toJSON() {
    const { dir, user, database } = this
    const nodes = this.nodes.map(({ name, host, pgPort, restPort }) => ({ name, host, pgPort, restPort }))
    return { dir, user, database, nodes }
  }
}

/**
 * Starts etcd and `nodes` Patroni nodes in a fresh directory and resolves once
 * a leader (and in synchronous mode a synchronous standby) runs, with a
 * database and role `app` owned by it. On failure everything started is
 * stopped again and the error carries the processes' last log lines.
 */
export const startPatroniCluster = async (options: PatroniClusterOptions = {}): Promise<PatroniCluster> => {
  const missing = missingPatroniTools()
  if (missing.length > 0) {
    throw new Error(
      `cannot start a Patroni cluster: missing ${missing.join(", ")}; scripts/install-debian-tools.sh installs them`
    )
  }
  const user = runAs()
  const parent = path.resolve(options.dataDir ?? os.tmpdir())
  const created = await fsp.mkdir(parent, { recursive: true })
  if (user !== undefined && !canTraverse(user, parent)) {
    if (created !== undefined) await fsp.rm(created, { recursive: true, force: true })
    throw new Error(`the postgres OS user cannot reach ${parent}; pass a dataDir every user can traverse`)
  }
  const dir = await fsp.mkdtemp(path.join(parent, "devdb-patroni-"))
  const ports: number[] = []
  // distinct: a port freed by one probe can be the next probe's answer
  while (ports.length < 2 + 2 * (options.nodes ?? 2)) {
    const port = await freePort()
    if (!ports.includes(port)) ports.push(port)
  }
  const [etcdClientPort, etcdPeerPort, ...nodePorts] = ports as [number, number, ...number[]]
  const layout: Layout = {
    dir,
    user,
    scope: `devdb-${randomBytes(6).toString("hex")}`,
    etcdClientPort,
    etcdPeerPort,
    synchronousMode: options.synchronousMode ?? true,
    log: options.log
  }
  const nodes = Array.from({ length: options.nodes ?? 2 }, (_, index): NodeState => {
    const nodeDir = path.join(dir, `node${index}`)
    return {
      name: `node${index}`,
      pgPort: nodePorts[2 * index] as number,
      restPort: nodePorts[2 * index + 1] as number,
      dir: nodeDir,
      dataDir: path.join(nodeDir, "data"),
      config: path.join(nodeDir, "patroni.yml"),
      tail: [],
      patroni: undefined
    }
  })
  const secrets = { superuser: secret(), replication: secret(), app: secret(), rest: secret() }
  const cluster = new Cluster(layout, nodes, secrets)
  installExitHook()
  liveClusters.add(cluster)
  try {
    if (user !== undefined) await fsp.chown(dir, user.uid, user.gid)
    await cluster.writeConfigs()
    const started = Date.now()
    const left = () => Math.max(0, started + START_TIMEOUT_MS - Date.now())
    await cluster.startEtcd(Math.min(ETCD_READY_TIMEOUT_MS, left()))
    cluster.startAllNodes()
    await cluster.waitHealthy(left())
    await cluster.createAppDatabase(left())
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    layout.log?.(`devdb: Patroni cluster of ${nodes.length} nodes up in ${seconds} s`)
    return cluster
  } catch (error) {
    const tails = cluster.tails()
    await cluster.destroy().catch(() => {})
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(`cannot start a Patroni cluster: ${message}\n${tails}`, { cause: error })
  }
}

/** the node that accepts writes (not in recovery), asked over SQL as the application role; undefined if none does */
export const findPrimary = async (cluster: PatroniCluster): Promise<PatroniNode | undefined> => {
  const answers = await Promise.all(
    cluster.nodes.map(async (node) => {
      const client = new pg.Client({
        connectionString: cluster.nodeUrl(node.name),
        connectionTimeoutMillis: 2_000,
        query_timeout: 5_000
      })
      client.on("error", () => {})
      try {
        await client.connect()
        const { rows } = await client.query<{ recovery: boolean }>("SELECT pg_is_in_recovery() AS recovery")
        return rows[0]?.recovery === false ? node : undefined
      } catch {
        return undefined
      } finally {
        await client.end().catch(() => {})
      }
    })
  )
  return answers.find((node) => node !== undefined)
}

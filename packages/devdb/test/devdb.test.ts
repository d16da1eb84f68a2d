import fs from "node:fs"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  applyMigrations,
  createCluster,
  makePrismaClient,
  startCluster,
  startProxy,
  type Cluster
} from "../src/index.js"

const urlFor = (cluster: Cluster, database: string, port = cluster.port) => {
  const url = new URL(cluster.url)
  url.port = String(port)
  url.pathname = `/${database}`
  return url.toString()
}

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

  it("applies migrations once and skips them afterwards", async () => {
    const log: string[] = []
    const first = await applyMigrations(cluster.url, { log: (line) => log.push(line) })
    expect(first.applied).toEqual(["20261127000000_init"])
    expect(first.skipped).toEqual([])
    expect(log).toEqual([expect.stringMatching(/^applied 20261127000000_init in \d+ ms$/)])
    const second = await applyMigrations(cluster.url)
    expect(second).toEqual({ applied: [], skipped: ["20261127000000_init"] })

    const client = await connect(cluster)
    try {
      const { rows } = await client.query(
        `SELECT migration_name, finished_at IS NOT NULL AS finished, applied_steps_count, length(checksum) AS checksum_length
         FROM "_prisma_migrations"`
      )
      expect(rows).toEqual([
        { migration_name: "20261127000000_init", finished: true, applied_steps_count: 1, checksum_length: 64 }
      ])
    } finally {
      await client.end()
    }
  })

  it("lets concurrent migrators apply each migration once", async () => {
    const admin = await connect(cluster)
    try {
      await admin.query("CREATE DATABASE concurrent")
    } finally {
      await admin.end()
    }
    const url = urlFor(cluster, "concurrent")
    const results = await Promise.all([applyMigrations(url), applyMigrations(url), applyMigrations(url)])
    expect(results.flatMap((result) => result.applied)).toEqual(["20261127000000_init"])
    expect(results.flatMap((result) => result.skipped)).toHaveLength(2)
  })

  it("refuses a migration whose file changed after it was applied, naming it", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "devdb-migrations-"))
    try {
      await fsp.mkdir(path.join(dir, "20261127000000_init"))
      await fsp.writeFile(path.join(dir, "20261127000000_init", "migration.sql"), "SELECT 1;\n")
      const failure = await applyMigrations(cluster.url, { migrationsDir: dir }).catch((error: Error) => error)
      expect(failure).toBeInstanceOf(Error)
      expect((failure as Error).message).toMatch(/20261127000000_init.*checksum/)
      expect((failure as Error).message).not.toContain(cluster.password)
    } finally {
      await fsp.rm(dir, { recursive: true, force: true })
    }
  })

  it("rolls back a failing migration and its record", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "devdb-migrations-"))
    try {
      await fsp.cp(new URL("../../../prisma/migrations", import.meta.url), dir, { recursive: true })
      await fsp.mkdir(path.join(dir, "20261128000000_broken"))
      await fsp.writeFile(
        path.join(dir, "20261128000000_broken", "migration.sql"),
        `CREATE TABLE "half" ("id" INTEGER);\nSELECT * FROM "no_such_table";\n`
      )
      await expect(applyMigrations(cluster.url, { migrationsDir: dir })).rejects.toThrow(
        /20261128000000_broken failed: relation "no_such_table" does not exist/
      )
      const client = await connect(cluster)
      try {
        const { rows } = await client.query(
          `SELECT to_regclass('half') AS half, (SELECT count(*)::int FROM "_prisma_migrations") AS recorded`
        )
        expect(rows).toEqual([{ half: null, recorded: 1 }])
      } finally {
        await client.end()
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true })
    }
  })

  it("writes and reads a purchase order through the Prisma client", async () => {
    const prisma = makePrismaClient(cluster.url, { max: 2 })
    try {
      const created = await prisma.purchaseOrder.create({
        data: { reference: "PO-1", totalCents: 12_345, note: "first" }
      })
      const found = await prisma.purchaseOrder.findUnique({ where: { id: created.id } })
      expect(found).toMatchObject({ reference: "PO-1", totalCents: 12_345, note: "first" })
    } finally {
      await prisma.$disconnect()
    }
  })

  it("keeps data across restart(), kill() and start()", async () => {
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

    const prisma = makePrismaClient(cluster.url)
    try {
      expect(await prisma.purchaseOrder.count({ where: { reference: "PO-1" } })).toBe(1)
    } finally {
      await prisma.$disconnect()
    }
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

  it("never logs the password", () => {
    expect(logLines.length).toBeGreaterThan(0)
    expect(logLines.filter((line) => line.includes(cluster.password))).toEqual([])
  })

  describe("TcpProxy", () => {
    it("forwards queries", async () => {
      const proxy = await startProxy(cluster)
      try {
        const prisma = makePrismaClient(urlFor(cluster, cluster.database, proxy.port))
        try {
          expect(await prisma.purchaseOrder.count()).toBe(1)
        } finally {
          await prisma.$disconnect()
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

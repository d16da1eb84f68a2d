// The service's own data layer: migrations applied through the adapter and
// recorded as `prisma migrate` would, and the generated client over its pool.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { applyMigrations, makePrismaClient, poolStats } from "../src/db/index.js"

const migrationsDir = new URL("../../../prisma/migrations", import.meta.url)

const connect = async (url: string) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  client.on("error", () => {})
  await client.connect()
  return client
}

const withDatabase = (cluster: Cluster, database: string) => {
  const url = new URL(cluster.url)
  url.pathname = `/${database}`
  return url.toString()
}

describe("the service's data layer", () => {
  let cluster: Cluster | undefined

  beforeAll(async () => {
    cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "http-db-test-")) })
  })

  afterAll(async () => {
    await cluster?.destroy()
  })

  const url = () => cluster!.url

  it("applies the package's migrations once and skips them afterwards", async () => {
    const log: string[] = []
    const first = await applyMigrations(url(), { log: (line) => log.push(line) })
    expect(first.applied).toEqual(["20261127000000_init"])
    expect(first.skipped).toEqual([])
    expect(log).toEqual([expect.stringMatching(/^applied 20261127000000_init in \d+ ms$/)])
    const second = await applyMigrations(url())
    expect(second).toEqual({ applied: [], skipped: ["20261127000000_init"] })

    const client = await connect(url())
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
    const admin = await connect(url())
    try {
      await admin.query("CREATE DATABASE concurrent")
    } finally {
      await admin.end()
    }
    const other = withDatabase(cluster!, "concurrent")
    const results = await Promise.all([applyMigrations(other), applyMigrations(other), applyMigrations(other)])
    expect(results.flatMap((result) => result.applied)).toEqual(["20261127000000_init"])
    expect(results.flatMap((result) => result.skipped)).toHaveLength(2)
  })

  it("refuses a migration whose file changed after it was applied, naming it", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "http-migrations-"))
    try {
      await fsp.mkdir(path.join(dir, "20261127000000_init"))
      await fsp.writeFile(path.join(dir, "20261127000000_init", "migration.sql"), "SELECT 1;\n")
      const failure = await applyMigrations(url(), { migrationsDir: dir }).catch((error: Error) => error)
      expect(failure).toBeInstanceOf(Error)
      expect((failure as Error).message).toMatch(/20261127000000_init.*checksum/)
      expect((failure as Error).message).not.toContain(cluster!.password)
    } finally {
      await fsp.rm(dir, { recursive: true, force: true })
    }
  })

  it("rolls back a failing migration and its record", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "http-migrations-"))
    try {
      await fsp.cp(migrationsDir, dir, { recursive: true })
      await fsp.mkdir(path.join(dir, "20261128000000_broken"))
      await fsp.writeFile(
        path.join(dir, "20261128000000_broken", "migration.sql"),
        `CREATE TABLE "half" ("id" INTEGER);\nSELECT * FROM "no_such_table";\n`
      )
      await expect(applyMigrations(url(), { migrationsDir: dir })).rejects.toThrow(
        /20261128000000_broken failed: relation "no_such_table" does not exist/
      )
      const client = await connect(url())
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

  it("writes and reads a purchase order through the generated client, and counts its pool", async () => {
    const prisma = makePrismaClient(url(), { max: 2 })
    try {
      const created = await prisma.purchaseOrder.create({
        data: { reference: "PO-1", totalCents: 12_345, note: "first" }
      })
      const found = await prisma.purchaseOrder.findUnique({ where: { id: created.id } })
      expect(found).toMatchObject({ reference: "PO-1", totalCents: 12_345, note: "first" })
      expect(poolStats(prisma)?.totalCount).toBeGreaterThanOrEqual(1)
    } finally {
      await prisma.$disconnect()
    }
  })
})

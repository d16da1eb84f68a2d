// Applies prisma/migrations the way `prisma migrate deploy` does and records
// them in _prisma_migrations, so that the real command can take over wherever
// Prisma's native schema engine is available (it is not here).
import { redact, Topology } from "@prisma-resilience/kernel"
import { PrismaPg } from "@prisma/adapter-pg"
import pg from "pg"
import { createHash, randomUUID } from "node:crypto"
import fsp from "node:fs/promises"
import path from "node:path"
import { fileURLToPath } from "node:url"

export interface MigrateOptions {
  readonly migrationsDir?: string
  readonly log?: (line: string) => void
}

export interface MigrateResult {
  readonly applied: ReadonlyArray<string>
  readonly skipped: ReadonlyArray<string>
}

/** the key `prisma migrate` locks, so this and Prisma exclude each other too */
const MIGRATION_LOCK_KEY = 72707369
const LOCK_TIMEOUT = "10s"

// Prisma's own DDL for the table, so that `prisma migrate` accepts it as is.
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`

interface Migration {
  readonly name: string
  readonly sql: string
  readonly checksum: string
}

interface AppliedRow {
  readonly migration_name: string
  readonly checksum: string
  readonly finished_at: Date | null
}

// the repository's prisma/migrations, from packages/http/src/db, dist/db and
// dist/bundle alike (all three are as deep)
const defaultMigrationsDir = () => fileURLToPath(new URL("../../../../prisma/migrations", import.meta.url))

const readMigrations = async (dir: string): Promise<ReadonlyArray<Migration>> => {
  const entries = await fsp.readdir(dir, { withFileTypes: true })
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
  return Promise.all(
    names.map(async (name) => {
      const bytes = await fsp.readFile(path.join(dir, name, "migration.sql")).catch((error: unknown) => {
        throw new Error(`migration ${name} has no readable migration.sql`, { cause: error })
      })
      return { name, sql: bytes.toString("utf8"), checksum: createHash("sha256").update(bytes).digest("hex") }
    })
  )
}

/** the database's own words: adapter errors wrap them in a `cause` payload */
const describe = (error: unknown) => {
  const payload = (error as { cause?: { originalMessage?: unknown; originalCode?: unknown } }).cause
  if (typeof payload?.originalMessage === "string") {
    return `${payload.originalMessage} (SQLSTATE ${String(payload.originalCode)})`
  }
  return error instanceof Error ? error.message : String(error)
}

/**
 * The node to migrate: the string itself, or for a multi-host one
 * (`target_session_attrs`) the first host that is not in recovery, since
 * node-postgres reads only one host and a standby refuses DDL.
 */
const writerOf = async (url: string): Promise<string> => {
  const plan = Topology.plan(url)
  if (plan === undefined) return url
  const failures: Array<string> = []
  for (let index = 0; index < plan.hosts.length; index++) {
    const client = new pg.Client({ connectionString: plan.url(index), connectionTimeoutMillis: 5_000 })
    client.on("error", () => {})
    try {
      await client.connect()
      const { rows } = await client.query<{ in_recovery: boolean }>("SELECT pg_is_in_recovery() AS in_recovery")
      if (rows[0]?.in_recovery === false) return plan.url(index)
      failures.push(`${plan.hosts[index]} is in recovery`)
    } catch (error) {
      failures.push(`${plan.hosts[index]}: ${redact(describe(error))}`)
    } finally {
      await client.end().catch(() => {})
    }
  }
  throw new Error(`no writable node to migrate (${failures.join("; ")})`)
}

export const applyMigrations = async (url: string, options: MigrateOptions = {}): Promise<MigrateResult> => {
  const migrations = await readMigrations(options.migrationsDir ?? defaultMigrationsDir())
  const writer = await writerOf(url)
  // One connection: the transaction belongs to it, and the adapter runs each
  // statement of a script as a separate pool query.
  const adapter = await new PrismaPg({ connectionString: writer, connectionTimeoutMillis: 5_000, max: 1 }).connect()
  const pool = adapter.underlyingDriver()
  let sessions = 0
  pool.on("connect", () => {
    sessions += 1
  })
  // If the connection drops, the pool quietly opens another one, which holds
  // neither the lock nor the transaction: stop rather than go on without them.
  const query = async <Row extends object = object>(sql: string, params?: ReadonlyArray<unknown>) => {
    if (sessions > 1) throw new Error("lost the database connection that holds the migration lock")
    return (await pool.query(sql, params as unknown[])).rows as Row[]
  }
  // One transaction holds the lock and every pending migration: a pooler in
  // transaction mode (PgBouncer) keeps a transaction on one server
  // connection, but may run the statements of a session on several, so a
  // session-level lock could be taken on one server connection and released
  // on another, and stay held by an idle one for good.
  try {
    await query("BEGIN")
    try {
      await query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`)
      await query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]).catch((error: unknown) => {
        throw new Error(
          `could not take the migration lock (pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})) ` +
            `within ${LOCK_TIMEOUT}: ${describe(error)}`,
          { cause: error }
        )
      })
      await query("SET LOCAL lock_timeout TO DEFAULT")
      const result = await applyPending(migrations, adapter, query)
      await query("COMMIT")
      for (const line of result.log) options.log?.(line)
      return { applied: result.applied, skipped: result.skipped }
    } catch (error) {
      await query("ROLLBACK").catch(() => {})
      throw error
    }
  } finally {
    await adapter.dispose()
  }
}

type Query = <Row extends object = object>(sql: string, params?: ReadonlyArray<unknown>) => Promise<Row[]>

/** Applies the pending migrations inside the caller's transaction; a failure rolls back every one of them. */
const applyPending = async (
  migrations: ReadonlyArray<Migration>,
  adapter: { executeScript(script: string): Promise<void> },
  query: Query
): Promise<MigrateResult & { readonly log: ReadonlyArray<string> }> => {
  await query(CREATE_MIGRATIONS_TABLE)
  // rolled-back rows are history: Prisma applies such a migration again
  const rows = await query<AppliedRow>(
    `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`
  )
  const applied: string[] = []
  const skipped: string[] = []
  const log: string[] = []
  for (const migration of migrations) {
    const recorded = rows.filter((row) => row.migration_name === migration.name)
    const finished = recorded.find((row) => row.finished_at !== null)
    if (finished) {
      if (finished.checksum !== migration.checksum) {
        throw new Error(
          `migration ${migration.name} was modified after it was applied: ` +
            `the checksum of its migration.sql differs from the one recorded in _prisma_migrations`
        )
      }
      skipped.push(migration.name)
      continue
    }
    if (recorded.length > 0) {
      throw new Error(
        `migration ${migration.name} failed earlier in this database (finished_at is NULL in _prisma_migrations); ` +
          `resolve it (prisma migrate resolve) before applying migrations again`
      )
    }
    const started = performance.now()
    // The schema change and its record commit together or not at all.
    try {
      await adapter.executeScript(migration.sql)
      await query(
        `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, finished_at, applied_steps_count)
         VALUES ($1, $2, $3, clock_timestamp(), 1)`,
        [randomUUID(), migration.checksum, migration.name]
      )
    } catch (error) {
      throw new Error(
        `migration ${migration.name} failed: ${describe(error)} (rolled back, with the migrations before it in this run)`,
        { cause: error }
      )
    }
    applied.push(migration.name)
    log.push(`applied ${migration.name} in ${Math.round(performance.now() - started)} ms`)
  }
  return { applied, skipped, log }
}

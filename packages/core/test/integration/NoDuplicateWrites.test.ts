// A retry never duplicates a write, and a safe retry is not skipped (real
// PostgreSQL). The server commits each statement but answers after the
// attempt timed out (pg_sleep past DB_ATTEMPT_TIMEOUT_MS, with the
// server-side limits off, as when a proxy holds the replies): the attempt
// is ambiguous. What may run again is decided by the most dangerous call the
// query function made, and an attempt that timed out is fenced: a call it
// makes afterwards (an async function still running) sends nothing.
import { createResilientPrisma, Database, type LayerOptions, RetryBudget } from "@prisma-resilience/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Logger, LogLevel, ManagedRuntime } from "effect"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import { makePrismaClient, type PrismaClient } from "../fixture/client.js"
import { pool, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")
const table = `dup_probe_${process.pid}`
const SLOW_S = 1.3
const options: LayerOptions<PrismaClient> = {
  url,
  client: (settings) => makePrismaClient(url, settings),
  warmup,
  pool,
  retry: { delaysMs: [50, 50], attemptTimeoutMs: 1000, requestBudgetMs: 9000, warmupWaitMs: 1500 },
  serverTimeouts: { enabled: false },
  // Neither the breaker nor the retry budget may decide here: each case is about retry safety alone.
  circuitBreaker: { failureThreshold: 0, resetTimeoutMs: 1000 },
  retryBudget: { ...RetryBudget.defaults, maxTokens: 0 }
}

const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
admin.on("error", () => {})
beforeAll(async () => {
  await admin.connect()
  await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, tag text NOT NULL)`)
})
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {})
  await admin.end()
})

/** rows written with `tag`, after the slowest abandoned statement would have finished */
const rowsOf = async (tag: string) => {
  await new Promise((resolve) => setTimeout(resolve, SLOW_S * 1000 + 700))
  const result = await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE tag = $1`, [tag])
  return result.rows[0].n as number
}
const unique = (name: string) => `${name}-${Math.random().toString(36).slice(2, 10)}`

type Client = PrismaClient
/** The query functions of the issue, each writing rows tagged `tag`; `slowFirst`: only attempt 1 is slow. */
const cases = (tag: string) => {
  let calls = 0
  const sleepFirst = () => (++calls === 1 ? SLOW_S : 0)
  return {
    insertReturning: (c: Client) =>
      c.$queryRawUnsafe(`INSERT INTO ${table} (tag) SELECT $1 FROM pg_sleep(${SLOW_S}) RETURNING id`, tag),
    countThenInsertTogether: (c: Client) =>
      Promise.all([
        c.$queryRaw`SELECT 1`,
        c.$executeRawUnsafe(`INSERT INTO ${table} (tag) SELECT $1 FROM pg_sleep(${SLOW_S})`, tag)
      ]),
    readThenWrite: async (c: Client) => {
      await c.$queryRawUnsafe(`SELECT 1 AS one FROM pg_sleep(${sleepFirst()})`)
      return c.$executeRawUnsafe(`INSERT INTO ${table} (tag) VALUES ($1)`, tag)
    },
    slowRead: (c: Client) => c.$queryRawUnsafe(`SELECT 42 AS answer FROM pg_sleep(${sleepFirst()})`)
  }
}

const quietly = Logger.withMinimumLogLevel(LogLevel.Error)

describe("no duplicated write after an ambiguous timeout; safe retries still happen", () => {
  // One layer for the whole file: an abandoned attempt must find its client
  // still connected, as in a long-running service.
  const runtime = ManagedRuntime.make(Database.layer(options))
  afterAll(() => runtime.dispose())
  const run = <A, E>(self: Effect.Effect<A, E, Database>) => runtime.runPromise(Effect.either(self).pipe(quietly))

  it("Database.query: INSERT … RETURNING through $queryRaw is a write, not retried", async () => {
    const tag = unique("returning")
    const result = await run(Effect.flatMap(Database, (db) => db.query(cases(tag).insertReturning)))
    expect(Either.isLeft(result) && result.left._tag).toBe("TimeoutError")
    expect(await rowsOf(tag)).toBe(1)
  }, 30_000)

  it("Database.query: a read and a write made together make a write", async () => {
    const tag = unique("together")
    const result = await run(Effect.flatMap(Database, (db) => db.query(cases(tag).countThenInsertTogether)))
    expect(Either.isLeft(result) && result.left._tag).toBe("TimeoutError")
    expect(await rowsOf(tag)).toBe(1)
  }, 30_000)

  it("Database.query: read, then write after an await: the timed-out attempt is fenced, the retry writes once", async () => {
    const tag = unique("fenced")
    const result = await run(Effect.flatMap(Database, (db) => db.query(cases(tag).readThenWrite)))
    // Attempt 1 timed out during its read (safe to retry); its write, made
    // after the timeout, is refused; attempt 2 writes.
    expect(Either.isRight(result)).toBe(true)
    expect(await rowsOf(tag)).toBe(1)
  }, 30_000)

  it("Database.query: a slow read is retried and succeeds (the safe retry is not skipped)", async () => {
    const result = await run(Effect.flatMap(Database, (db) => db.query(cases("read").slowRead)))
    expect(Either.isRight(result) && (result.right as Array<{ answer: number }>)[0]!.answer).toBe(42)
  }, 30_000)

  describe("the Promise adapter", () => {
    const db = createResilientPrisma(options)
    afterAll(() => db.$disconnect())

    it("$queryRaw INSERT … RETURNING: TimeoutError, one row", async () => {
      const tag = unique("p-returning")
      const error = await db.$query(cases(tag).insertReturning).then(() => undefined, (e: { _tag: string }) => e._tag)
      expect(error).toBe("TimeoutError")
      expect(await rowsOf(tag)).toBe(1)
    }, 30_000)

    it("$query with a read and a write together: one row", async () => {
      const tag = unique("p-together")
      await db.$query(cases(tag).countThenInsertTogether).catch(() => {})
      expect(await rowsOf(tag)).toBe(1)
    }, 30_000)

    it("$query read then write: resolves, one row", async () => {
      const tag = unique("p-fenced")
      await expect(db.$query(cases(tag).readThenWrite)).resolves.toBe(1)
      expect(await rowsOf(tag)).toBe(1)
    }, 30_000)

    it("$query slow read: retried, resolves", async () => {
      const rows = await db.$query(cases("p-read").slowRead)
      expect((rows as Array<{ answer: number }>)[0]!.answer).toBe(42)
    }, 30_000)
  })
})

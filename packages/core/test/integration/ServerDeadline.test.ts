// The attempt timeout reaches PostgreSQL: a statement whose attempt timed out
// is cancelled by the server, not left running beside its retry (real
// PostgreSQL; each test blocks on a row lock of a table of its own).
import {
  Database,
  type DatabaseError,
  type LayerOptions,
  Metrics,
  type PoolSettings,
  type PrismaClientLike,
  RetryPolicy,
  type ServerTimeoutConfig
} from "@prisma-resilience/core"
import { describe, expect, it } from "../support/vitest.js"
import { Effect, Result, Fiber, Metric } from "effect"
import pg from "pg"
import { afterAll, beforeAll, inject } from "vitest"
import { makePrismaClient, poolStats, type PrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { captureLogs, Db, pool as basePool, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")
const table = `deadline_${process.pid}`
const lockedRow = `SELECT n FROM ${table} WHERE id = 1 FOR UPDATE`

let monitor: pg.Client
const sql = async <R extends object>(text: string, values?: Array<unknown>) => (await monitor.query(text, values)).rows as Array<R>

beforeAll(async () => {
  monitor = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  await monitor.connect()
  await monitor.query(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL)`)
  await monitor.query(`INSERT INTO ${table} VALUES (1, 0)`)
})
afterAll(async () => {
  await monitor.query(`DROP TABLE IF EXISTS ${table}`)
  await monitor.end()
})

let apps = 0
/** A layer whose connections carry an application_name of their own, to find them in pg_stat_activity. */
const deadlineLayer = (options: {
  readonly retry?: Partial<RetryPolicy.RetryConfig>
  readonly pool?: Partial<PoolSettings>
  readonly serverTimeouts?: Partial<ServerTimeoutConfig>
  readonly client?: LayerOptions<PrismaClient>["client"]
}) => {
  const app = `deadline-${process.pid}-${++apps}`
  const target = new URL(url)
  target.searchParams.set("application_name", app)
  const layer = Database.layer({
    client: options.client ?? ((settings) => makePrismaClient(target.toString(), settings)),
    poolStats,
    retry: { ...RetryPolicy.defaults, ...options.retry },
    warmup,
    pool: { ...basePool, ...options.pool },
    // Timeouts by the dozen are the point here, not what they do to the breaker and the budget.
    circuitBreaker: { failureThreshold: 0, resetTimeoutMs: 1000 },
    retryBudget: { maxTokens: 0, tokenRatio: 0.1 },
    ...(options.serverTimeouts ? { serverTimeouts: options.serverTimeouts } : {})
  })
  return { app, layer }
}

/** Holds the row lock of `table` until the scope closes. */
const holdRowLock = Effect.acquireRelease(
  Effect.promise(async () => {
    const locker = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
    await locker.connect()
    await locker.query("BEGIN")
    await locker.query(`UPDATE ${table} SET n = n + 1 WHERE id = 1`)
    return locker
  }),
  (locker) => Effect.promise(() => locker.query("ROLLBACK").then(() => locker.end()).catch(() => {}))
)

interface Backend {
  pid: number
  state: string | null
  wait_event_type: string | null
}
const backends = (app: string) =>
  Effect.promise(() =>
    sql<Backend>("SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid", [app])
  )
const waitingOnLock = (app: string) =>
  Effect.map(backends(app), (rows) => rows.filter((row) => row.wait_event_type === "Lock").length)

const counter = (metric: Metric.Counter<number>, labels: Record<string, string>) =>
  Metric.value(metric.pipe(Metric.withAttributes(Object.entries(labels).map(([k, v]): [string, string] => [k, v])))).pipe(
    Effect.map((state) => state.count)
  )

const failure = <A>(effect: Effect.Effect<A, DatabaseError, Database>) =>
  Effect.flatMap(Effect.result(effect), (result) =>
    Result.isFailure(result) ? Effect.succeed(result.failure) : Effect.die(new Error("expected the query to fail")))

describe("server-side deadlines on a real PostgreSQL", () => {
  it.live("the client factory gets the limits with the pool settings, and the server applies them", () => {
    const seen: Array<PoolSettings> = []
    const { layer } = deadlineLayer({
      client: (settings) => {
        seen.push(settings)
        return makePrismaClient(url, settings)
      }
    })
    return Effect.gen(function*() {
      const [settings] = yield* Db.query((c) =>
        c.$queryRaw<Array<{ statement: string; lock: string; idle: string }>>`
          SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock,
                 current_setting('idle_in_transaction_session_timeout') AS idle`
      )
      expect(seen[0]).toMatchObject({
        max: basePool.max,
        statement_timeout: 1900,
        lock_timeout: 1900,
        idle_in_transaction_session_timeout: 2000
      })
      expect(settings).toEqual({ statement: "1900ms", lock: "1900ms", idle: "2s" })
    }).pipe(Effect.provide(layer))
  })

  it.live("a query blocked by a lock is cancelled by the server at the attempt timeout; its connection and locks are freed", () => {
    // A wide margin: on a loaded machine the client's timer must not win the race the test is about.
    const { app, layer } = deadlineLayer({
      retry: { attemptTimeoutMs: 1000, delaysMs: [] },
      pool: { max: 1 },
      serverTimeouts: { marginMs: 300 }
    })
    const operation = `deadline.blocked.${app}`
    return Effect.gen(function*() {
      const pid = yield* Db.query((c) => c.$queryRaw<Array<{ pid: number }>>`SELECT pg_backend_pid() AS pid`).pipe(
        Effect.map(([row]) => row!.pid)
      )
      const cancelledBefore = yield* counter(Metrics.statementCancellations, { operation, code: "57014" })
      yield* holdRowLock
      const started = Date.now()
      const blocked = yield* Db.query((c) => c.$executeRawUnsafe(`UPDATE ${table} SET n = n + 1 WHERE id = 1`), {
        operation
      }).pipe(Effect.result, Effect.forkChild)
      yield* Effect.sleep("300 millis")
      const during = yield* Effect.promise(() =>
        sql<{ locks: number; waiting: number }>(
          "SELECT count(*)::int AS locks, count(*) FILTER (WHERE NOT granted)::int AS waiting FROM pg_locks WHERE pid = $1",
          [pid]
        )
      )
      expect(during[0]!.waiting).toBe(1)
      const result = yield* Fiber.join(blocked)
      const elapsed = Date.now() - started
      const error = Result.isFailure(result) ? result.failure : undefined
      // The server's answer at 700 ms, before the client's own timer (1000 ms) fired.
      expect(error?._tag).toBe("TimeoutError")
      expect(error?.code).toBe("57014")
      expect(elapsed).toBeGreaterThanOrEqual(650)
      const after = yield* Effect.promise(() =>
        sql<{ locks: number }>("SELECT count(*)::int AS locks FROM pg_locks WHERE pid = $1", [pid])
      )
      const left = yield* backends(app)
      const stats = yield* (yield* Database).poolStats
      console.info(
        `[core] blocked UPDATE cancelled by the server after ${elapsed} ms (limit 700 ms, attempt timeout 1000 ms): backend ${pid} ` +
          `held ${during[0]!.locks} lock(s) while waiting, ${after[0]!.locks} after; the app's backends now ` +
          `${JSON.stringify(left)}; pool ${JSON.stringify(stats)}`
      )
      expect(after[0]!.locks).toBe(0)
      // Nothing of the statement runs on: pg-pool closes a connection whose
      // query failed, so its backend is gone, and its pool slot is free.
      expect(left.filter((backend) => backend.state !== "idle")).toEqual([])
      expect(stats?.waitingCount).toBe(0)
      expect(stats?.totalCount).toBeLessThanOrEqual(1)
      // The one pool slot serves the next query at once, while the lock is still held.
      const next = Date.now()
      yield* Db.query((c) => c.$queryRaw`SELECT 1`)
      expect(Date.now() - next).toBeLessThan(1000)
      expect((yield* counter(Metrics.statementCancellations, { operation, code: "57014" })) - cancelledBefore).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  const retriesBesideTheirPredecessor = (serverTimeouts: boolean) => {
    const { app, layer } = deadlineLayer({
      retry: { attemptTimeoutMs: 800, delaysMs: [50, 50] },
      pool: { max: 4 },
      serverTimeouts: { enabled: serverTimeouts, marginMs: 300 }
    })
    return Effect.gen(function*() {
      yield* holdRowLock
      const logs = captureLogs()
      const query = yield* Db.query((c) => c.$queryRawUnsafe(lockedRow), { operation: `deadline.retried.${app}` }).pipe(
        Effect.result,
        Effect.provide(logs.layer),
        Effect.forkChild
      )
      let most = 0
      const samples: Array<number> = []
      while (query.pollUnsafe() === undefined) {
        const waiting = yield* waitingOnLock(app)
        samples.push(waiting)
        most = Math.max(most, waiting)
        yield* Effect.sleep("10 millis")
      }
      const result = yield* Fiber.join(query)
      const retries = logs.lines.filter((line) => line.includes("retrying in")).length
      return { error: Result.isFailure(result) ? result.failure : undefined, most, retries, samples: samples.length }
    }).pipe(Effect.scoped, Effect.provide(layer))
  }

  it.live("a retry never runs beside its timed-out predecessor", () =>
    Effect.gen(function*() {
      const { error, most, retries, samples } = yield* retriesBesideTheirPredecessor(true)
      console.info(`[core] 3 attempts on a locked row: at most ${most} statement(s) waiting at once (${samples} samples)`)
      expect(retries).toBe(2)
      expect(error?.code).toBe("57014")
      expect(most).toBe(1)
    }))

  it.live("without the server-side limit (DB_SERVER_TIMEOUTS=false) the retries pile up beside their predecessors", () =>
    Effect.gen(function*() {
      const { error, most, retries } = yield* retriesBesideTheirPredecessor(false)
      console.info(`[core] without server-side limits: ${most} statements waiting at once after ${retries} retries`)
      expect(retries).toBe(2)
      expect(error?.code).toBe("ATTEMPT_TIMEOUT")
      expect(most).toBe(3)
    }))

  const hundredTimeouts = (serverTimeouts: boolean) => {
    const { app, layer } = deadlineLayer({
      retry: { attemptTimeoutMs: 500, delaysMs: [] },
      pool: { max: 5 },
      serverTimeouts: { enabled: serverTimeouts, marginMs: 250 }
    })
    const operation = `deadline.hundred.${app}`
    return Effect.gen(function*() {
      const db = yield* Database
      // Five connections open and idle before the timeouts start.
      const fillPool = Effect.all(
        Array.from({ length: 5 }, () => Db.query((c) => c.$queryRaw`SELECT 1 AS one FROM pg_sleep(0.05)`)),
        { concurrency: 5 }
      )
      yield* fillPool
      const before = { server: yield* backends(app), pool: yield* db.poolStats }
      const cancelledBefore = yield* counter(Metrics.statementCancellations, { operation, code: "57014" })
      let most = 0
      // Counted while the lock is still held: what an abandoned statement would still be doing.
      const { after, codes } = yield* Effect.scoped(
        Effect.gen(function*() {
          yield* holdRowLock
          const codes = yield* Effect.forEach(
            Array.from({ length: 100 }),
            () =>
              Effect.map(failure(Db.query((c) => c.$queryRawUnsafe(lockedRow), { operation })), (e) => e.code).pipe(
                Effect.tap(() => Effect.flatMap(backends(app), (rows) => Effect.sync(() => (most = Math.max(most, rows.length)))))
              ),
            { concurrency: 5 }
          )
          return { codes, after: { server: yield* backends(app), pool: yield* db.poolStats } }
        })
      )
      const cancelled = (yield* counter(Metrics.statementCancellations, { operation, code: "57014" })) - cancelledBefore
      yield* fillPool
      const refilled = { server: yield* backends(app), pool: yield* db.poolStats }
      return { before, after, refilled, codes, cancelled, most }
    }).pipe(Effect.provide(layer))
  }

  const describeConnections = (server: ReadonlyArray<Backend>, pool: unknown) =>
    `${server.length} connection(s) (${server.filter((b) => b.state === "idle").length} idle, ` +
    `${server.filter((b) => b.wait_event_type === "Lock").length} waiting on a lock), pool ${JSON.stringify(pool)}`

  it.live("100 timeouts: every statement cancelled by the server, the pool neither shrinks nor leaks", () =>
    Effect.gen(function*() {
      const { after, before, cancelled, codes, most, refilled } = yield* hundredTimeouts(true)
      console.info(
        `[core] 100 server-side timeouts: before ${describeConnections(before.server, before.pool)}; ` +
          `after ${describeConnections(after.server, after.pool)}; at most ${most} connection(s) during; ` +
          `5 queries later ${describeConnections(refilled.server, refilled.pool)}; db_statement_cancellations_total +${cancelled}`
      )
      expect(codes.filter((code) => code === "57014")).toHaveLength(100)
      expect(cancelled).toBe(100)
      expect(before.server).toHaveLength(5)
      expect(most).toBeLessThanOrEqual(5)
      // Nothing left running or waiting, nobody queued for a connection.
      expect(after.server.filter((b) => b.state !== "idle")).toEqual([])
      expect(after.pool?.waitingCount).toBe(0)
      expect(after.pool?.totalCount).toBeLessThanOrEqual(5)
      // Not shrunk: the pool opens its five connections again.
      expect(refilled.server).toHaveLength(5)
      expect(refilled.pool).toEqual({ totalCount: 5, idleCount: 5, waitingCount: 0 })
    }), { timeout: 120_000 })

  it.live("100 timeouts without the server-side limit: the abandoned statements hold every connection", () =>
    Effect.gen(function*() {
      const { after, before, codes } = yield* hundredTimeouts(false)
      console.info(
        `[core] 100 client-side timeouts only: before ${describeConnections(before.server, before.pool)}; ` +
          `after ${describeConnections(after.server, after.pool)}`
      )
      expect(codes.filter((code) => code === "ATTEMPT_TIMEOUT")).toHaveLength(100)
      // Still running when the requests gave up: all five, waiting for a lock nobody awaits.
      expect(after.server.filter((b) => b.wait_event_type === "Lock")).toHaveLength(5)
    }), { timeout: 120_000 })

  it.live("a transaction sets its own limit (SET LOCAL), also with the connection-level limits off", () => {
    const { app, layer } = deadlineLayer({
      retry: { attemptTimeoutMs: 1000, delaysMs: [50] },
      pool: { max: 2 },
      serverTimeouts: { enabled: false, marginMs: 300 }
    })
    const operation = `deadline.transaction.${app}`
    return Effect.gen(function*() {
      const [outside] = yield* Db.query((c) => c.$queryRaw<Array<{ limit: string }>>`SELECT current_setting('statement_timeout') AS limit`)
      expect(outside!.limit).toBe("0")
      yield* holdRowLock
      const limits: Array<string> = []
      let runs = 0
      const started = Date.now()
      const error = yield* failure(Db.transaction(async (tx) => {
        runs++
        const [row] = await tx.$queryRaw<Array<{ limit: string }>>`SELECT current_setting('statement_timeout') AS limit`
        limits.push(row!.limit)
        return tx.$executeRawUnsafe(`UPDATE ${table} SET n = n + 1 WHERE id = 1`)
      }, { operation }))
      const elapsed = Date.now() - started
      console.info(`[core] transaction limits ${limits.join(", ")}; failed with ${error.code} after ${elapsed} ms, ${runs} run(s)`)
      // What was left of each 1000 ms attempt, less the 300 ms margin.
      for (const limit of limits) expect(Number(limit.replace("ms", ""))).toBeGreaterThan(500)
      for (const limit of limits) expect(Number(limit.replace("ms", ""))).toBeLessThanOrEqual(700)
      expect(error.code).toBe("57014")
      // Cancelled before COMMIT, so rolled back: run again like a conflict.
      expect(error.safety).toBe("transaction")
      expect(runs).toBe(2)
      expect(elapsed).toBeLessThan(2 * 1000 + 50)
      expect(yield* waitingOnLock(app)).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("an attempt with a timeout of its own runs under its own limit: a longer per-call timeout, a shorter remaining budget", () => {
    const { layer } = deadlineLayer({ retry: { attemptTimeoutMs: 800, delaysMs: [] }, serverTimeouts: { marginMs: 300 } })
    return Effect.gen(function*() {
      // The connection's limit is 500 ms; this call allows 1500 ms.
      const slow = yield* Effect.result(
        Db.query((c) => c.$queryRaw`SELECT 1 AS one FROM pg_sleep(0.6)`, { retry: { attemptTimeoutMs: 1500 } })
      )
      expect(Result.isSuccess(slow)).toBe(true)
      yield* holdRowLock
      const started = Date.now()
      const error = yield* failure(Db.query((c) => c.$queryRawUnsafe(lockedRow)).pipe(RetryPolicy.withBudget("400 millis")))
      const elapsed = Date.now() - started
      console.info(`[core] 400 ms left of the budget: cancelled by the server after ${elapsed} ms (${error.code})`)
      // Its own limit, 100 ms, not the connection's 500 ms, and before the client's 400 ms.
      expect(error.code).toBe("57014")
      expect(elapsed).toBeLessThan(400)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("a pooler that refuses the limits as startup parameters: warm-up connects without them, and says so", () => {
    const calls: Array<PoolSettings> = []
    const refused: PrismaClientLike = {
      $connect: () => Promise.resolve(),
      $disconnect: () => Promise.resolve(),
      // PgBouncer 1.18's answer, as Prisma reports it.
      $queryRaw: () =>
        Promise.reject(
          Object.assign(new Error("Raw query failed. Code: `08P01`. Message: `unsupported startup parameter: statement_timeout`"), {
            code: "P2010"
          })
        ),
      $transaction: () => Promise.reject(new Error("unused"))
    }
    const { layer } = deadlineLayer({
      client: (settings) => {
        calls.push(settings)
        return settings.statement_timeout === undefined ? makePrismaClient(url, settings) : refused as unknown as PrismaClient
      }
    })
    const logs = captureLogs()
    return Effect.gen(function*() {
      const [row] = yield* Db.query((c) => c.$queryRaw<Array<{ limit: string }>>`SELECT current_setting('statement_timeout') AS limit`)
      expect(row!.limit).toBe("0")
      expect(calls.map((settings) => settings.statement_timeout)).toEqual([1900, undefined])
      expect(logs.lines.some((line) => line.includes("refused the connection-level limits") && line.includes("DB_SERVER_TIMEOUTS=false"))).toBe(
        true
      )
      // Transactions still carry their own limit.
      const limit = yield* Db.transaction((tx) =>
        tx.$queryRaw<Array<{ limit: string }>>`SELECT current_setting('statement_timeout') AS limit`
      )
      expect(limit[0]!.limit).toMatch(/^1[89]\d\dms$/)
    }).pipe(Effect.provide(layer), Effect.provide(logs.layer))
  })
})

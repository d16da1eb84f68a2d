// The fault matrix: the real service (a child process, as `npm start` runs it)
// under steady HTTP load on loopback, against a real PostgreSQL that is broken
// on purpose. Every scenario records what the clients saw and what the
// database holds, prints one table at the end, and fails on a broken invariant.
import { CircuitBreaker, Database, type DatabaseTag, RetryBudget, RetryPolicy } from "@prisma-resilience/core-effect3"
import { type Cluster, createCluster, freePort, startCluster, startProxy } from "@prisma-resilience/devdb"
import { applyMigrations, makePrismaClient, type PrismaClient } from "@prisma-resilience/http/db"
import { Duration, Effect, Logger, LogLevel } from "effect"
import fs from "node:fs"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import {
  accuracyText,
  BUDGET_SLACK_MS,
  checkWrites,
  type GatedLoadResult,
  requestBudgetMs,
  type Row,
  seed,
  type Service,
  sleep,
  startGatedLoad,
  startLoad,
  startService,
  table,
  unhandledLines,
  waitHealthy,
  withClient
} from "./support/harness.js"
import { type PgBouncer, pgbouncerUnavailable, startPgBouncer } from "./support/pgbouncer.js"

const rows: Array<Row> = []
const cleanups: Array<() => Promise<unknown>> = []

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  console.info(`\nFault matrix (${new Date().toISOString()}, ${os.cpus().length} cores, Node ${process.version})\n\n${table(rows)}\n`)
})

const newCluster = async (start: boolean, settings?: Record<string, string>) => {
  const options = { dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "faults-")), ...(settings ? { settings } : {}) }
  const cluster = start ? await startCluster(options) : await createCluster(options)
  cleanups.push(() => cluster.destroy())
  return cluster
}

const service = async (url: string, env: Record<string, string> = {}) => {
  const s = await startService(url, env)
  cleanups.push(() => s.stop())
  return s
}

const urlVia = (cluster: Cluster, port: number) => {
  const url = new URL(cluster.url)
  url.port = String(port)
  return url.toString()
}

/** The invariants every scenario shares; returns the table row. */
const finish = async (
  scenario: string,
  cluster: Cluster,
  s: Service,
  prefix: string,
  load: Awaited<ReturnType<typeof startLoad>["done"]>,
  notes: string
) => {
  const writes = await checkWrites(cluster, prefix, load.acknowledged)
  const unhandled = unhandledLines(s)
  const budgetMs = requestBudgetMs(s)
  const row: Row = {
    scenario,
    requests: load.sent,
    ok: load.ok,
    typed503: load.typed503,
    other: load.other.length,
    unhandled: unhandled.length + (s.crashed() ? 1 : 0),
    rowsExpected: writes.expected,
    rowsFound: writes.found,
    health: accuracyText(load.health),
    maxLatencyMs: load.maxLatencyMs,
    budgetMs,
    notes: `${notes}; lost ${writes.lost}, duplicated ${writes.duplicated}`
  }
  rows.push(row)
  if (load.other.length > 0) {
    console.warn(`[faults] ${scenario}: service log lines about failures:\n${s.logs.filter((l) => /QueryError|failed/.test(l)).slice(0, 10).join("\n")}`)
  }
  expect(load.other, "requests that failed with anything but a typed 503").toEqual([])
  expect(unhandled, "unhandled errors in the service log").toEqual([])
  expect(s.crashed()).toBeUndefined()
  expect(writes.lost, "acknowledged writes missing").toBe(0)
  expect(writes.duplicated, "writes stored twice").toBe(0)
  expect(load.maxLatencyMs, `the longest request against DB_REQUEST_BUDGET_MS ${budgetMs} + ${BUDGET_SLACK_MS} ms`)
    .toBeLessThanOrEqual(budgetMs + BUDGET_SLACK_MS)
  return row
}

const load = (s: Service, readIds: ReadonlyArray<string>, prefix: string, durationMs: number) =>
  startLoad(s.baseUrl, { clients: 4, durationMs, readIds, writeEvery: 3, prefix, pauseMs: 20 })

/** 9 s of load; the database is down (fast shutdown) from 2 s to 4 s. */
const restartUnderLoad = async (
  scenario: string,
  cluster: Cluster,
  s: Service,
  ids: ReadonlyArray<string>,
  prefix: string
) => {
  const running = load(s, ids, prefix, 9000)
  await sleep(2000)
  await cluster.stop("fast")
  await sleep(2000)
  await cluster.start()
  running.markRecovery()
  const result = await running.done
  await finish(scenario, cluster, s, prefix, result, `recovery ${result.recoveryMs} ms after ready`)
  expect(result.recoveryMs).toBeDefined()
  return result
}

// The readiness-gated fleet (issue 17, item 1). Its instances share one
// database; each keeps its pool small so that 6 × DB_POOL_MAX stays well under
// max_connections (100) and under PgBouncer's max_client_conn (200).
const FLEET_SIZE = 6
const FLEET_POOL_MAX = 4
const GATE_POLL_MS = 250
/**
 * How soon after the database is ready again every instance's `/health` must
 * pass, with no traffic but the gate's polls. The worst case by core's
 * defaults: a probe that failed just before the database was ready opens the
 * breaker for one reset, DB_CIRCUIT_RESET_MS 2000 × (1 + DB_CIRCUIT_RESET_JITTER
 * 0.2) = 2400 ms; then one probe, DB_HEALTH_TIMEOUT_MS 1000, and for a query
 * path it cannot see by `SELECT 1` the last failed read run again under the
 * same timeout, 1000; one gate period, 250; through PgBouncer its
 * server_login_retry, 1000, before it tries the server again: 5650 ms. The
 * rest, 2350 ms, is for 6 services, PostgreSQL and the test sharing 2 cores.
 * Health that waits for other traffic never passes (issue 17 saw 30 s).
 */
const HEALTHY_WITHIN_MS = 8000
/** how long to watch a fleet that does not recover, to say how it fails */
const FLEET_WATCH_MS = 20_000

const countEach = (items: ReadonlyArray<string>) => {
  const counts = new Map<string, number>()
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1)
  return [...counts].map(([item, n]) => `${item} ×${n}`).join(", ")
}

interface InstanceRecovery {
  readonly instance: number
  /** a poll failed while the database was down: the instance was taken out of rotation */
  readonly failedWhileDown: boolean
  /** the first passing poll sent after the database was ready, ms after it */
  readonly healthyMs: number | undefined
  /** the failing polls after ready, before that first pass: their reasons */
  readonly reasons: string
  /** failing polls after that first pass */
  readonly relapses: number
  /**
   * requests sent before the gate saw the instance fail and still running when the database was ready
   * (through PgBouncer an attempt waits up to DB_ATTEMPT_TIMEOUT_MS for a server, so a request sent in
   * the first second of the outage can retry past it), and how many of them succeeded before the
   * instance's health passed: such a success is traffic that could have closed the breaker instead
   */
  readonly inFlightAtReady: number
  readonly servedBeforeHealthy: number
  /** requests sent to the instance while the gate's last poll of it had failed */
  readonly sentWhileFailing: number
}

const recoveryOf = (result: GatedLoadResult, instance: number, stoppedAt: number, readyAt: number): InstanceRecovery => {
  const polls = result.polls[instance]!
  const pass = polls.find((p) => p.startedAt >= readyAt && p.status === 200)
  const failing = polls.filter((p) => p.startedAt >= readyAt && (pass === undefined || p.startedAt < pass.startedAt))
  const requests = result.requests.filter((r) => r.instance === instance)
  return {
    instance,
    failedWhileDown: polls.some((p) => p.startedAt >= stoppedAt && p.answeredAt <= readyAt && p.status !== 200),
    healthyMs: pass && pass.answeredAt - readyAt,
    reasons: countEach(failing.map((p) => `${p.status} ${p.reason ?? ""}`.trim())),
    relapses: pass === undefined ? 0 : polls.filter((p) => p.startedAt > pass.startedAt && p.status !== 200).length,
    inFlightAtReady: requests.filter((r) => r.startedAt < readyAt && r.answeredAt > readyAt).length,
    servedBeforeHealthy: requests.filter((r) =>
      r.outcome === "ok" && r.answeredAt > readyAt && r.answeredAt < (pass?.answeredAt ?? Infinity)
    ).length,
    sentWhileFailing: requests.filter((r) => r.gateStatus !== 200).length
  }
}

const recoveryText = (r: InstanceRecovery) =>
  `#${r.instance} ${r.healthyMs === undefined ? `never in ${FLEET_WATCH_MS / 1000} s` : `${r.healthyMs} ms`}` +
  (r.reasons === "" ? "" : ` (${r.reasons})`) + (r.relapses > 0 ? `, ${r.relapses} failing polls after` : "") +
  (r.inFlightAtReady > 0
    ? `, ${r.inFlightAtReady} requests in flight at ready, ${r.servedBeforeHealthy} served before health passed`
    : "")

/** The gated fleet's row and invariants: the shared ones for every instance, and its recovery. */
const finishFleet = async (
  scenario: string,
  cluster: Cluster,
  fleet: ReadonlyArray<Service>,
  prefix: string,
  result: GatedLoadResult,
  at: { readonly stoppedAt: number; readonly readyAt: number; readonly recoveredAt: number }
) => {
  const writes = await checkWrites(cluster, prefix, result.acknowledged)
  const unhandled = fleet.flatMap((s, i) =>
    [...unhandledLines(s), ...(s.crashed() ? [`crashed: ${s.crashed()}`] : [])].map((line) => `#${i} ${line}`)
  )
  const budgetMs = Math.min(...fleet.map(requestBudgetMs))
  const recoveries = fleet.map((_, i) => recoveryOf(result, i, at.stoppedAt, at.readyAt))
  const okAfter = result.requests.filter((r) => r.startedAt >= at.recoveredAt && r.outcome === "ok").length
  rows.push({
    scenario,
    requests: result.sent,
    ok: result.ok,
    typed503: result.typed503,
    other: result.other.length,
    unhandled: unhandled.length,
    rowsExpected: writes.expected,
    rowsFound: writes.found,
    health: "–",
    maxLatencyMs: result.maxLatencyMs,
    budgetMs,
    notes: `${FLEET_SIZE} instances (DB_POOL_MAX ${FLEET_POOL_MAX}) behind a gate polling /health every ${GATE_POLL_MS} ms; ` +
      `database stopped 3 s; /health 200 after ready: ${recoveries.map(recoveryText).join("; ")}; ` +
      `${okAfter} successes in the 1.5 s after; lost ${writes.lost}, duplicated ${writes.duplicated}`
  })
  expect(result.other, "requests that failed with anything but a typed 503").toEqual([])
  expect(unhandled, "unhandled errors or crashes in the services").toEqual([])
  expect(writes.lost, "acknowledged writes missing").toBe(0)
  expect(writes.duplicated, "writes stored twice").toBe(0)
  expect(result.maxLatencyMs, `the longest request against DB_REQUEST_BUDGET_MS ${budgetMs} + ${BUDGET_SLACK_MS} ms`)
    .toBeLessThanOrEqual(budgetMs + BUDGET_SLACK_MS)
  // the premise: each instance left the rotation, and was sent nothing but polls until its health passed
  // again (requests already running when it left are counted in the notes)
  expect(
    recoveries.filter((r) => !r.failedWhileDown).map((r) => r.instance),
    "instances whose /health never failed while the database was down"
  ).toEqual([])
  expect(
    recoveries.filter((r) => r.sentWhileFailing > 0).map((r) => `#${r.instance} ${r.sentWhileFailing}`),
    "requests the gate sent to an instance whose last /health had failed"
  ).toEqual([])
  // the invariant: health passes once queries would succeed, with no other traffic, and stays passing
  const late = recoveries.filter((r) => r.healthyMs === undefined || r.healthyMs > HEALTHY_WITHIN_MS)
  expect(late.map(recoveryText), `instances whose /health did not pass within ${HEALTHY_WITHIN_MS} ms of the database being ready`)
    .toEqual([])
  expect(recoveries.filter((r) => r.relapses > 0).map(recoveryText), "instances whose /health failed again after passing")
    .toEqual([])
  expect(okAfter, "successes through the recovered fleet").toBeGreaterThan(0)
}

const startInstance = async (url: string, index: number) => {
  const s = await service(url, { DB_POOL_MAX: String(FLEET_POOL_MAX) })
  await waitHealthy(s.baseUrl).catch((error: Error) => {
    const lines = s.logs.filter((line) => !line.includes("Health check")).slice(-12)
    throw new Error(`instance #${index}: ${error.message}; its log but health checks, last lines:\n${lines.join("\n")}`)
  })
  return s
}

const startFleet = (url: string) => Promise.all(Array.from({ length: FLEET_SIZE }, (_, i) => startInstance(url, i)))

// Through PgBouncer in transaction mode, instances that start together can
// hang in their start-up migrations for good: `applyMigrations` takes a
// session-level advisory lock and sets lock_timeout, which PgBouncer spreads
// over different server connections, so an unlock can miss the lock, which
// stays held by an idle server connection, and the next `pg_advisory_lock`
// waits without a timeout (seen: instance "warming" for 30 s, pg_locks showing
// an idle holder and a waiter). That is a start-up bug of its own; one at a
// time keeps this scenario about recovery.
const startFleetOneByOne = async (url: string) => {
  const fleet: Array<Service> = []
  for (let i = 0; i < FLEET_SIZE; i++) fleet.push(await startInstance(url, i))
  return fleet
}

/**
 * 6 instances behind a readiness gate under load; PostgreSQL fast-stopped,
 * started 3 s later. Every instance must pass `/health` again within
 * HEALTHY_WITHIN_MS of the database being ready, though the gate sends it
 * nothing but polls meanwhile.
 */
const gatedFleetRestart = async (
  scenario: string,
  cluster: Cluster,
  url: string,
  prefix: string,
  start: "together" | "one by one"
) => {
  const ids = await seed(cluster, prefix, 20)
  const fleet = start === "together"
    ? await startFleet(url)
    : await startFleetOneByOne(url)
  const running = startGatedLoad(fleet.map((s) => s.baseUrl), {
    clients: 6,
    readIds: ids,
    writeEvery: 3,
    prefix,
    pauseMs: 20,
    pollMs: GATE_POLL_MS,
    pollTimeoutMs: 2000,
    maxDurationMs: 60_000
  })
  await sleep(2000)
  const stoppedAt = Date.now()
  await cluster.stop("fast")
  await sleep(3000)
  await cluster.start()
  const readyAt = Date.now()
  const allPassing = () =>
    running.result.polls.every((polls) => polls.some((p) => p.startedAt >= readyAt && p.status === 200))
  while (!allPassing() && Date.now() - readyAt < FLEET_WATCH_MS) await sleep(50)
  // traffic through the recovered fleet, and time for a relapse to show
  await sleep(1500)
  const recoveredAt = Date.now() - 1500
  const result = await running.stop()
  await finishFleet(scenario, cluster, fleet, prefix, result, { stoppedAt, readyAt, recoveredAt })
}

describe("fault matrix", () => {
  it("1. database down at boot, up 3 s later: warming meanwhile, then 200", async () => {
    const cluster = await newCluster(false)
    const s = await service(cluster.url)
    const healthDuring: Array<string> = []
    let maxLatencyMs = 0
    const startAt = Date.now() + 3000
    while (Date.now() < startAt) {
      const sent = Date.now()
      const response = await fetch(`${s.baseUrl}/health`)
      const body = await response.json() as { status: string; reason?: string }
      maxLatencyMs = Math.max(maxLatencyMs, Date.now() - sent)
      healthDuring.push(`${response.status} ${body.reason ?? body.status}`)
      await sleep(100)
    }
    await cluster.start()
    const acceptingAt = Date.now()
    await waitHealthy(s.baseUrl, 10_000)
    const healthyAfterMs = Date.now() - acceptingAt
    const distinct = [...new Set(healthDuring)]
    rows.push({
      scenario: "1 down at boot, up after 3 s",
      requests: healthDuring.length,
      ok: 0,
      typed503: healthDuring.length,
      other: 0,
      unhandled: unhandledLines(s).length + (s.crashed() ? 1 : 0),
      rowsExpected: "–",
      rowsFound: "–",
      health: "–",
      maxLatencyMs,
      budgetMs: requestBudgetMs(s),
      notes: `/health while down: ${distinct.join(", ")}; 200 ${healthyAfterMs} ms after the database accepted connections`
    })
    expect(distinct).toEqual(["503 warming"])
    expect(maxLatencyMs, "the longest /health poll against the request budget").toBeLessThanOrEqual(requestBudgetMs(s) + BUDGET_SLACK_MS)
    // One warm-up backoff step (capped at 1 s) plus migrations and the probe.
    expect(healthyAfterMs).toBeLessThan(1000 + 2000)
    expect(unhandledLines(s)).toEqual([])
  })

  it("2. database restarted (fast shutdown) under read and write load", async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const prefix = "f2"
    const ids = await seed(cluster, prefix, 20)
    const s = await service(cluster.url)
    await waitHealthy(s.baseUrl)
    const result = await restartUnderLoad("2 restart under load", cluster, s, ids, prefix)
    expect(result.typed503).toBeGreaterThan(0)
  })

  it("3. all backends terminated (pg_terminate_backend) under load", async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const prefix = "f3"
    const ids = await seed(cluster, prefix, 20)
    const s = await service(cluster.url)
    await waitHealthy(s.baseUrl)
    const running = load(s, ids, prefix, 6000)
    let terminated = 0
    for (let round = 0; round < 3; round++) {
      await sleep(1500)
      terminated += await withClient(cluster, async (c) =>
        (await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")).rowCount ?? 0
      )
    }
    const result = await running.done
    await finish("3 all backends terminated ×3", cluster, s, prefix, result, `${terminated} backends terminated`)
    expect(terminated).toBeGreaterThan(0)
  })

  it("4. max_connections exhausted by another client", async () => {
    const cluster = await newCluster(true, { max_connections: "20", superuser_reserved_connections: "0", synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const prefix = "f4"
    const ids = await seed(cluster, prefix, 20)
    const s = await service(cluster.url, { DB_POOL_MAX: "4" })
    await waitHealthy(s.baseUrl)
    const running = load(s, ids, prefix, 8000)
    await sleep(1500)
    // Take every free slot, cut the service's connections, and take the slots
    // they freed too: the service must reconnect into a full server.
    const { Client } = (await import("pg")).default
    const hogs: Array<import("pg").Client> = []
    const fill = async () => {
      for (let i = 0; i < 40; i++) {
        const c = new Client({ connectionString: cluster.url, connectionTimeoutMillis: 2000 })
        c.on("error", () => {})
        try {
          await c.connect()
          hogs.push(c)
        } catch {
          return
        }
      }
    }
    await fill()
    const hogPids = () => hogs.map((h) => (h as unknown as { processID: number }).processID)
    let cut = 0
    const until = Date.now() + 3000
    while (Date.now() < until) {
      const { rowCount } = await hogs[hogs.length - 1]!.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> ALL($1::int[])",
        [hogPids()]
      )
      cut += rowCount ?? 0
      await fill()
      await sleep(100)
    }
    await Promise.all(hogs.map((h) => h.end().catch(() => {})))
    running.markRecovery()
    const result = await running.done
    await finish(
      "4 max_connections exhausted",
      cluster,
      s,
      prefix,
      result,
      `${hogs.length} connections held for 3 s, ${cut} of the service's cut meanwhile; recovery ${result.recoveryMs} ms after release`
    )
    expect(hogs.length).toBeGreaterThan(5)
    expect(result.typed503).toBeGreaterThan(0)
    expect(result.recoveryMs).toBeDefined()
  })

  it("5. stalled network: per-attempt timeouts fire, no request exceeds the budget", { timeout: 180_000 }, async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const proxy = await startProxy({ host: "127.0.0.1", port: cluster.port })
    cleanups.push(() => proxy.close())
    const prefix = "f5"
    const ids = await seed(cluster, prefix, 20)
    const s = await service(urlVia(cluster, proxy.port))
    await waitHealthy(s.baseUrl)
    const running = load(s, ids, prefix, 14_000)
    await sleep(1500)
    // Longer than the request budget allows for: three attempts time out and
    // the requests end with a 503 before the budget runs out.
    proxy.stall(true)
    await sleep(8000)
    proxy.stall(false)
    running.markRecovery()
    const result = await running.done
    const timeouts = s.logs.filter((l) => l.includes("ATTEMPT_TIMEOUT")).length
    await finish(
      "5 stalled network (8 s)",
      cluster,
      s,
      prefix,
      result,
      `${timeouts} attempt timeouts logged; recovery ${result.recoveryMs} ms after unstall`
    )
    expect(timeouts).toBeGreaterThan(0)
    expect(result.typed503).toBeGreaterThan(0)
  })

  it("6. serialization conflicts: 50 concurrent transactions on one row end exact", async () => {
    const cluster = await newCluster(true)
    await applyMigrations(cluster.url)
    const [id] = await seed(cluster, "f6", 1)
    // The default `Database`, its accessors typed for this client.
    const Db = Database as unknown as DatabaseTag<Database, "@prisma-resilience/core-effect3/Database", PrismaClient>
    let failures = 0
    // the transactions' own budget: 40 quick retries of a conflict need more than the default 9 s
    const budgetMs = 60_000
    let maxLatencyMs = 0
    await Effect.runPromise(
      Effect.forEach(
        Array.from({ length: 50 }),
        () =>
          Db.transaction(async (tx) => {
            const row = await tx.purchaseOrder.findUniqueOrThrow({ where: { id: id! } })
            await tx.purchaseOrder.update({ where: { id: id! }, data: { totalCents: row.totalCents + 1 } })
          }, {
            isolationLevel: "Serializable",
            operation: "fault6.increment",
            retry: { delaysMs: Array.from({ length: 40 }, (_, i) => 5 + (i % 8) * 5), jitter: true, requestBudgetMs: budgetMs }
          }).pipe(
            Effect.catchAll(() => Effect.sync(() => failures++)),
            Effect.timed,
            Effect.map(([elapsed]) => {
              maxLatencyMs = Math.max(maxLatencyMs, Math.round(Duration.toMillis(elapsed)))
            })
          ),
        { concurrency: 50, discard: true }
      ).pipe(
        Effect.provide(Db.layer({
          client: (pool) => makePrismaClient(cluster.url, pool),
          retry: RetryPolicy.defaults,
          retryBudget: RetryBudget.defaults,
          circuitBreaker: CircuitBreaker.defaults
        })),
        Logger.withMinimumLogLevel(LogLevel.Error)
      )
    )
    const final = await withClient(cluster, async (c) =>
      (await c.query<{ total_cents: number }>("SELECT total_cents FROM purchase_order WHERE id = $1", [id])).rows[0]!.total_cents
    )
    rows.push({
      scenario: "6 serialization conflicts",
      requests: 50,
      ok: 50 - failures,
      typed503: 0,
      other: failures,
      unhandled: 0,
      rowsExpected: "counter 50",
      rowsFound: `counter ${final}`,
      health: "–",
      maxLatencyMs,
      budgetMs,
      notes: "50 concurrent serializable read-increment-write transactions, in-process"
    })
    expect(failures).toBe(0)
    expect(maxLatencyMs, "the longest transaction call against its budget").toBeLessThanOrEqual(budgetMs + BUDGET_SLACK_MS)
    expect(final).toBe(50)
  })

  /** The postmaster and every process it started: the whole server. */
  const serverPids = (postmaster: number) => {
    const children = fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster
      } catch {
        return false
      }
    })
    return [postmaster, ...children]
  }

  it("8. PostgreSQL frozen (SIGSTOP) for 5 s under load: health fails while queries do", async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const prefix = "f8"
    const ids = await seed(cluster, prefix, 20)
    const s = await service(cluster.url)
    await waitHealthy(s.baseUrl)
    const running = load(s, ids, prefix, 11_000)
    await sleep(2000)
    const frozen = serverPids(cluster.pid!)
    for (const pid of frozen) process.kill(pid, "SIGSTOP")
    cleanups.push(async () => {
      for (const pid of frozen) process.kill(pid, "SIGCONT")
    })
    await sleep(5000)
    for (const pid of frozen) process.kill(pid, "SIGCONT")
    running.markRecovery()
    const result = await running.done
    await finish("8 PostgreSQL frozen (SIGSTOP) 5 s", cluster, s, prefix, result, `${frozen.length} processes frozen; recovery ${result.recoveryMs} ms after SIGCONT`)
    expect(result.typed503).toBeGreaterThan(0)
    expect(result.recoveryMs).toBeDefined()
  })

  it("9. table locked for 5 s under load: SELECT 1 passes, health does not", async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const prefix = "f9"
    const ids = await seed(cluster, prefix, 20)
    const s = await service(cluster.url)
    await waitHealthy(s.baseUrl)
    const running = load(s, ids, prefix, 11_000)
    await sleep(2000)
    await withClient(cluster, async (c) => {
      await c.query("BEGIN")
      await c.query("LOCK TABLE purchase_order IN ACCESS EXCLUSIVE MODE")
      await sleep(5000)
      await c.query("COMMIT")
    })
    running.markRecovery()
    const result = await running.done
    await finish("9 table locked 5 s", cluster, s, prefix, result, `recovery ${result.recoveryMs} ms after COMMIT`)
    expect(result.typed503).toBeGreaterThan(0)
  })

  it("10. long lock under load: the server cancels each blocked statement at its attempt timeout; connections before and after", async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    const prefix = "f10"
    const ids = await seed(cluster, prefix, 20)
    // The service's own connections, told apart from the test's in pg_stat_activity.
    const app = "faults-10"
    const url = new URL(cluster.url)
    url.searchParams.set("application_name", app)
    const s = await service(url.toString())
    await waitHealthy(s.baseUrl)
    const connections = () =>
      withClient(cluster, async (c) =>
        (await c.query<{ open: number; busy: number; waiting: number; longestWaitMs: number }>(
          `SELECT count(*)::int AS open,
                  count(*) FILTER (WHERE state <> 'idle')::int AS busy,
                  count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting,
                  coalesce(max(extract(epoch FROM now() - query_start) * 1000)
                    FILTER (WHERE wait_event_type = 'Lock'), 0)::int AS "longestWaitMs"
             FROM pg_stat_activity WHERE application_name = $1`,
          [app]
        )).rows[0]!)
    const running = load(s, ids, prefix, 20_000)
    await sleep(2000)
    const before = await connections()
    // 12 s: longer than a request's whole budget (9 s).
    let locked = true
    let mostWaiting = 0
    let longestWaitMs = 0
    const sampling = (async () => {
      while (locked) {
        const now = await connections()
        mostWaiting = Math.max(mostWaiting, now.waiting)
        longestWaitMs = Math.max(longestWaitMs, now.longestWaitMs)
        await sleep(100)
      }
    })()
    await withClient(cluster, async (c) => {
      await c.query("BEGIN")
      await c.query("LOCK TABLE purchase_order IN ACCESS EXCLUSIVE MODE")
      await sleep(12_000)
      await c.query("COMMIT")
    })
    locked = false
    await sampling
    running.markRecovery()
    const result = await running.done
    const after = await connections()
    const metrics = await (await fetch(`${s.baseUrl}/metrics`)).text()
    const cancelled = [...metrics.matchAll(/^db_statement_cancellations_total\{[^}]*\} (\d+)$/gm)]
      .reduce((sum, [, n]) => sum + Number(n), 0)
    await finish(
      "10 long lock (12 s) under load",
      cluster,
      s,
      prefix,
      result,
      `connections before ${before.open} (${before.busy} busy), after ${after.open} (${after.busy} busy); ` +
        `during the lock at most ${mostWaiting} waiting, the longest for ${longestWaitMs} ms; ` +
        `${cancelled} statements cancelled by the server; recovery ${result.recoveryMs} ms after COMMIT`
    )
    expect(result.typed503).toBeGreaterThan(0)
    expect(cancelled).toBeGreaterThan(0)
    // No statement outlives its attempt (DB_ATTEMPT_TIMEOUT_MS 2000, cancelled at 1900 ms): nothing keeps
    // waiting for a lock after its request gave up, nor beside its retry.
    expect(longestWaitMs).toBeLessThan(RetryPolicy.defaults.attemptTimeoutMs + 500)
    // After the load: nothing left running or waiting, and no more connections than the pool's.
    expect(after.busy).toBe(0)
    expect(after.open).toBeLessThanOrEqual(10)
    expect(result.recoveryMs).toBeDefined()
  })

  it("11. six instances behind a readiness gate: PostgreSQL stopped 3 s under load, every /health passes again with no other traffic", async () => {
    const cluster = await newCluster(true, { synchronous_commit: "on" })
    await applyMigrations(cluster.url)
    await gatedFleetRestart("11 gated fleet of 6, restart", cluster, cluster.url, "f11", "together")
  })

  describe("7. through PgBouncer in transaction mode", () => {
    const unavailable = pgbouncerUnavailable()
    if (unavailable !== undefined) console.warn(`[faults] scenario 7 skipped: ${unavailable}`)

    // In CI, where .ci/run installs PgBouncer, its absence fails the run instead of skipping a scenario.
    it.runIf(unavailable !== undefined && process.env.CI === "true")("can run: PgBouncer is installed (CI requires it)", () => {
      expect.fail(`scenario 7 cannot run: ${unavailable}`)
    })

    it.skipIf(unavailable !== undefined)("happy path and a restart under load", async () => {
      const cluster = await newCluster(true, { synchronous_commit: "on" })
      await applyMigrations(cluster.url)
      const bouncer: PgBouncer = await startPgBouncer(cluster, await freePort())
      cleanups.push(() => bouncer.stop())
      const prefix = "f7"
      const ids = await seed(cluster, prefix, 20)
      const s = await service(bouncer.url)
      await waitHealthy(s.baseUrl)
      const happy = await load(s, ids, `${prefix}h`, 2000).done
      await finish("7a PgBouncer (transaction mode), happy path", cluster, s, `${prefix}h`, happy, "no fault")
      expect(happy.typed503).toBe(0)
      await restartUnderLoad("7b PgBouncer, restart under load", cluster, s, ids, prefix)
    })

    it.skipIf(unavailable !== undefined)("6 concurrent migrators through PgBouncer, 5 rounds: every one finishes, each migration applied once", async () => {
      // A session-level advisory lock through transaction pooling can be
      // released on another server connection than the one holding it, and
      // an idle server connection then holds it for good: migrations take
      // the lock inside their transaction instead.
      const cluster = await newCluster(true)
      const bouncer: PgBouncer = await startPgBouncer(cluster, await freePort())
      cleanups.push(() => bouncer.stop())
      for (let round = 0; round < 5; round++) {
        const outcomes = await Promise.all(Array.from({ length: 6 }, () =>
          Promise.race([
            applyMigrations(bouncer.url).then((result) => `applied ${result.applied.length}`, (error: Error) => error.message),
            sleep(20_000).then(() => "still waiting after 20 s")
          ])))
        expect(outcomes.filter((outcome) => !/^applied \d+$/.test(outcome)), `round ${round}`).toEqual([])
        expect(outcomes.filter((outcome) => outcome !== "applied 0")).toHaveLength(round === 0 ? 1 : 0)
      }
      const rows = await withClient(cluster, (client) => client.query(`SELECT count(*)::int AS n FROM "_prisma_migrations"`))
      expect(rows.rows[0].n).toBe(fs.readdirSync(new URL("../prisma/migrations", import.meta.url)).filter((name) => /^\d/.test(name)).length)
    })

    it.skipIf(unavailable !== undefined)("gated fleet of 6 through PgBouncer: PostgreSQL stopped 3 s under load, every /health passes again", async () => {
      const cluster = await newCluster(true, { synchronous_commit: "on" })
      await applyMigrations(cluster.url)
      const bouncer: PgBouncer = await startPgBouncer(cluster, await freePort())
      cleanups.push(() => bouncer.stop())
      await gatedFleetRestart("7c PgBouncer, gated fleet of 6, restart", cluster, bouncer.url, "f7c", "one by one")
    })
  })
})

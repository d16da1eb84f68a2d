// The fault matrix's tools: the real service as a child process (what `npm
// start` runs), bounded steady HTTP load on loopback, and the checks of what
// the database holds afterwards.
import { type Cluster, freePort } from "@prisma-resilience/devdb"
import { type ChildProcess, spawn } from "node:child_process"
import path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
// The compiled service, as `npm start` runs it (`npm run test:faults` builds first).
const mainPath = path.join(root, "packages/http/dist/bundle/main.mjs")

export interface Service {
  readonly baseUrl: string
  readonly pid: number
  readonly logs: ReadonlyArray<string>
  /** set when the process exited before `stop` was called: a crash */
  readonly crashed: () => string | undefined
  /** SIGTERM, wait (bounded), SIGKILL if it did not exit; resolves with the exit code */
  readonly stop: () => Promise<number | null>
}

const waitFor = async (check: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(50)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Starts the service against `databaseUrl`, listening on a free loopback port. */
export const startService = async (databaseUrl: string, env: Record<string, string> = {}): Promise<Service> => {
  const port = await freePort()
  const logs: Array<string> = []
  let stopping = false
  let crash: string | undefined
  const child: ChildProcess = spawn(process.execPath, [mainPath], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line.trim() !== "") logs.push(line)
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code, signal) => {
      if (!stopping) crash = `exited with ${code ?? signal} before it was stopped`
      resolve(code)
    })
  })
  const baseUrl = `http://127.0.0.1:${port}`
  const stop = async () => {
    stopping = true
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  try {
    await waitFor(async () => (await fetch(`${baseUrl}/live`)).status === 200, 30_000, "the service to listen")
  } catch (error) {
    await stop()
    throw new Error(`${(error as Error).message}; service log:\n${logs.join("\n")}`)
  }
  return { baseUrl, pid: child.pid!, logs, crashed: () => crash, stop }
}

export const waitHealthy = (baseUrl: string, timeoutMs = 30_000) =>
  waitFor(async () => (await fetch(`${baseUrl}/health`)).status === 200, timeoutMs, "/health 200")

export interface LoadOptions {
  readonly clients: number
  readonly durationMs: number
  /** ids of existing orders, read with GET */
  readonly readIds: ReadonlyArray<string>
  /** every n-th request of a client is a POST (0: reads only) */
  readonly writeEvery: number
  /** unique per scenario: references and idempotency keys start with it */
  readonly prefix: string
  /** pause between a client's requests */
  readonly pauseMs: number
}

export interface LoadResult {
  sent: number
  ok: number
  typed503: number
  other: Array<string>
  maxLatencyMs: number
  /** references whose POST was answered 201/200 */
  acknowledged: Set<string>
  /** first 2xx after `markRecovery` was called, ms after it */
  recoveryMs: number | undefined
  /** statuses seen, in order of arrival, for scenario-specific checks */
  statuses: Array<number>
  /** `/health` and a GET sampled together every 100 ms */
  health: HealthAccuracy
}

/**
 * Health accuracy, the incident's own success criterion: how often `/health`
 * and a real query, sampled at the same moment, agree. `falsePass` is the
 * dangerous miss (health 200 while the query failed); `falseFail` takes a
 * working instance out of rotation.
 */
export interface HealthAccuracy {
  samples: number
  agree: number
  falsePass: number
  falseFail: number
}

export const accuracyText = (h: HealthAccuracy) =>
  h.samples === 0
    ? "–"
    : `${(100 * h.agree / h.samples).toFixed(1)} % of ${h.samples}` +
      (h.falsePass + h.falseFail > 0 ? ` (${h.falsePass} false pass, ${h.falseFail} false fail)` : "")

const PLATFORM_LIMIT_MS = 10_000

/**
 * Steady load: `clients` loops, each sending a request, then pausing. A POST
 * answered 503 is sent again with the same Idempotency-Key (at most 5 times),
 * as a well-behaved client would. Bounded by `durationMs`.
 */
export const startLoad = (baseUrl: string, options: LoadOptions) => {
  const result: LoadResult = {
    sent: 0,
    ok: 0,
    typed503: 0,
    other: [],
    maxLatencyMs: 0,
    acknowledged: new Set(),
    recoveryMs: undefined,
    statuses: [],
    health: { samples: 0, agree: 0, falsePass: 0, falseFail: 0 }
  }
  let recoveryFrom: number | undefined
  const deadline = Date.now() + options.durationMs

  const send = async (method: "GET" | "POST", url: string, body?: unknown, key?: string) => {
    result.sent++
    const started = Date.now()
    try {
      const response = await fetch(url, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(PLATFORM_LIMIT_MS)
      })
      const text = await response.text()
      const latency = Date.now() - started
      result.maxLatencyMs = Math.max(result.maxLatencyMs, latency)
      result.statuses.push(response.status)
      if (response.status === 200 || response.status === 201) {
        result.ok++
        if (recoveryFrom !== undefined && result.recoveryMs === undefined) result.recoveryMs = Date.now() - recoveryFrom
        return "ok" as const
      }
      if (
        response.status === 503 && response.headers.get("retry-after") !== null &&
        JSON.parse(text)._tag === "DatabaseUnavailable"
      ) {
        result.typed503++
        return "unavailable" as const
      }
      result.other.push(`${method} ${response.status} ${text.slice(0, 200)}`)
      return "other" as const
    } catch (error) {
      result.maxLatencyMs = Math.max(result.maxLatencyMs, Date.now() - started)
      result.other.push(`${method} ${(error as Error).name}: ${(error as Error).message}`)
      return "other" as const
    }
  }

  const client = async (index: number) => {
    for (let n = 0; Date.now() < deadline; n++) {
      if (options.writeEvery > 0 && n % options.writeEvery === options.writeEvery - 1) {
        const reference = `${options.prefix}-${index}-${n}`
        for (let attempt = 0; attempt < 5; attempt++) {
          const outcome = await send("POST", `${baseUrl}/purchase-orders`, { reference, totalCents: 100 + n }, reference)
          if (outcome === "ok") result.acknowledged.add(reference)
          if (outcome !== "unavailable" || Date.now() >= deadline) break
          await sleep(200)
        }
      } else {
        const id = options.readIds[(index + n) % options.readIds.length]!
        await send("GET", `${baseUrl}/purchase-orders/${id}`)
      }
      await sleep(options.pauseMs)
    }
  }

  const status = (url: string) =>
    fetch(url, { signal: AbortSignal.timeout(PLATFORM_LIMIT_MS) }).then(
      async (response) => {
        await response.arrayBuffer()
        return response.status
      },
      () => 0
    )
  // A pair every 100 ms, not one after the other: a stalled query must not
  // thin out the samples taken while it stalls.
  const sampler = async () => {
    const pairs: Array<Promise<void>> = []
    const id = options.readIds[0]
    for (; id !== undefined && Date.now() < deadline; await sleep(100)) {
      pairs.push(
        Promise.all([status(`${baseUrl}/health`), status(`${baseUrl}/purchase-orders/${id}`)]).then(([health, query]) => {
          const h = result.health
          h.samples++
          if ((health === 200) === (query === 200)) h.agree++
          else if (health === 200) h.falsePass++
          else h.falseFail++
        })
      )
    }
    await Promise.all(pairs)
  }

  const done = Promise.all([...Array.from({ length: options.clients }, (_, i) => client(i)), sampler()]).then(() => result)
  return {
    done,
    /** the database is back from now: measure the time to the next success */
    markRecovery: () => {
      recoveryFrom = Date.now()
      result.recoveryMs = undefined
    }
  }
}

export const withClient = <A>(cluster: Cluster, f: (client: pg.Client) => Promise<A>, url = cluster.url) =>
  withUrl(url, f)

/** `withClient` for a database known by its URL alone (a node of an HA cluster). */
export const withUrl = async <A>(url: string, f: (client: pg.Client) => Promise<A>) => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on("error", () => {})
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/** Seeds `count` orders to read; returns their ids. */
export const seed = (cluster: Cluster, prefix: string, count: number) => seedAt(cluster.url, prefix, count)

/** `seed` for a database known by its URL alone. */
export const seedAt = (url: string, prefix: string, count: number) =>
  withUrl(url, async (client) => {
    const ids: Array<string> = []
    for (let i = 0; i < count; i++) {
      const { rows } = await client.query<{ id: string }>(
        "INSERT INTO purchase_order (id, reference, total_cents) VALUES (gen_random_uuid(), $1, $2) RETURNING id",
        [`${prefix}-seed-${i}`, i]
      )
      ids.push(rows[0]!.id)
    }
    return ids
  })

export interface WriteCheck {
  readonly expected: number
  readonly found: number
  readonly lost: number
  readonly duplicated: number
}

/** Every acknowledged write is there exactly once; no idempotency key has two rows. */
export const checkWrites = (cluster: Cluster, prefix: string, acknowledged: ReadonlySet<string>) =>
  checkWritesAt(cluster.url, prefix, acknowledged)

/** `checkWrites` for a database known by its URL alone (the current leader of an HA cluster). */
export const checkWritesAt = (url: string, prefix: string, acknowledged: ReadonlySet<string>) =>
  withUrl(url, async (client): Promise<WriteCheck> => {
    const { rows } = await client.query<{ reference: string; idempotency_key: string | null }>(
      "SELECT reference, idempotency_key FROM purchase_order WHERE reference LIKE $1 AND reference NOT LIKE $2",
      [`${prefix}-%`, `${prefix}-seed-%`]
    )
    const byReference = new Map<string, number>()
    const byKey = new Map<string, number>()
    for (const row of rows) {
      byReference.set(row.reference, (byReference.get(row.reference) ?? 0) + 1)
      if (row.idempotency_key) byKey.set(row.idempotency_key, (byKey.get(row.idempotency_key) ?? 0) + 1)
    }
    const lost = [...acknowledged].filter((reference) => !byReference.has(reference)).length
    const duplicated = [...byReference.values(), ...byKey.values()].filter((n) => n > 1).length
    return { expected: acknowledged.size, found: rows.length, lost, duplicated }
  })

/** Log lines of the service that speak of an unhandled error or a defect. */
export const unhandledLines = (service: Service) =>
  service.logs.filter((line) => /unhandled|uncaught|defect/i.test(line))

export interface Row {
  readonly scenario: string
  readonly requests: number
  readonly ok: number
  readonly typed503: number
  readonly other: number
  readonly unhandled: number
  readonly rowsExpected: number | string
  readonly rowsFound: number | string
  readonly health: string
  readonly notes: string
}

/** A Markdown table: one header cell per column, the rows' cells in the same order. */
export const markdownTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>) =>
  [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...rows.map((cells) => `| ${cells.join(" | ")} |`)
  ].join("\n")

export const table = (rows: ReadonlyArray<Row>) =>
  markdownTable(
    ["scenario", "requests", "succeeded", "typed 503", "other failures", "unhandled errors", "rows expected (acknowledged)", "rows found", "health accuracy", "notes"],
    rows.map((r) => [r.scenario, r.requests, r.ok, r.typed503, r.other, r.unhandled, r.rowsExpected, r.rowsFound, r.health, r.notes])
  )

// The fault matrix's tools: the real service as a child process (what `npm
// start` runs), bounded steady HTTP load on loopback, and the checks of what
// the database holds afterwards.
import { RetryPolicy } from "@prisma-resilience/core-effect3"
import { type Cluster, freePort, withConnection } from "@prisma-resilience/devdb"
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
  /** the service's own settings (what `startService` was given besides the URL, port and host) */
  readonly env: Readonly<Record<string, string>>
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
  return { baseUrl, pid: child.pid!, logs, env, crashed: () => crash, stop }
}

/**
 * The request budget the service runs with: its `DB_REQUEST_BUDGET_MS`, or
 * core's default when it was not given one (`startService` passes no other
 * environment). No request may end later than this plus 100 ms.
 */
export const requestBudgetMs = (service: Pick<Service, "env">) =>
  service.env.DB_REQUEST_BUDGET_MS === undefined
    ? RetryPolicy.defaults.requestBudgetMs
    : Number(service.env.DB_REQUEST_BUDGET_MS)

/** How much later than its budget a request may end (issue 17, item 4). */
export const BUDGET_SLACK_MS = 100

/** "max latency / budget" as the tables print it; flags an overrun. */
export const latencyText = (maxLatencyMs: number | undefined, budgetMs: number | undefined) =>
  maxLatencyMs === undefined || budgetMs === undefined
    ? "–"
    : `${maxLatencyMs} / ${budgetMs} ms${maxLatencyMs > budgetMs + BUDGET_SLACK_MS ? ` (over by ${maxLatencyMs - budgetMs} ms)` : ""}`

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

type Outcome = "ok" | "unavailable" | "other"

interface Answer {
  readonly outcome: Outcome
  /** 0 when no HTTP answer came (connection error, the platform limit) */
  readonly status: number
  /** what an answer that was neither 2xx nor a typed 503 said */
  readonly detail: string
  /** from the request sent to its answer's body read */
  readonly latencyMs: number
}

const isTypedUnavailable = (status: number, retryAfter: string | null, text: string) => {
  if (status !== 503 || retryAfter === null) return false
  try {
    return (JSON.parse(text) as { _tag?: unknown })._tag === "DatabaseUnavailable"
  } catch {
    return false
  }
}

/**
 * One request on loopback, judged as the load's clients judge it: 2xx, a
 * typed 503 (`DatabaseUnavailable` with `Retry-After`), or anything else.
 */
const exchange = async (method: "GET" | "POST", url: string, body?: unknown, key?: string): Promise<Answer> => {
  const started = Date.now()
  try {
    const response = await fetch(url, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(PLATFORM_LIMIT_MS)
    })
    const text = await response.text()
    const latencyMs = Date.now() - started
    const { status } = response
    if (status === 200 || status === 201) return { outcome: "ok", status, detail: "", latencyMs }
    if (isTypedUnavailable(status, response.headers.get("retry-after"), text)) {
      return { outcome: "unavailable", status, detail: "", latencyMs }
    }
    return { outcome: "other", status, detail: `${method} ${status} ${text.slice(0, 200)}`, latencyMs }
  } catch (error) {
    const detail = `${method} ${(error as Error).name}: ${(error as Error).message}`
    return { outcome: "other", status: 0, detail, latencyMs: Date.now() - started }
  }
}

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
    const answer = await exchange(method, url, body, key)
    result.maxLatencyMs = Math.max(result.maxLatencyMs, answer.latencyMs)
    if (answer.status !== 0) result.statuses.push(answer.status)
    if (answer.outcome === "ok") {
      result.ok++
      if (recoveryFrom !== undefined && result.recoveryMs === undefined) result.recoveryMs = Date.now() - recoveryFrom
    } else if (answer.outcome === "unavailable") result.typed503++
    else result.other.push(answer.detail)
    return answer.outcome
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

// ------------------------------------------------ a readiness-gated fleet

/** One `/health` poll by the gate. */
export interface HealthPoll {
  readonly startedAt: number
  readonly answeredAt: number
  /** 0 when no answer came within the gate's timeout */
  readonly status: number
  /** the `reason` of a failing health, as the service gave it */
  readonly reason: string | undefined
}

/** One request of the gated load (`/health` polls are not requests). */
export interface GatedRequest {
  readonly instance: number
  readonly startedAt: number
  readonly answeredAt: number
  /** the status of the gate's last `/health` poll of the instance when the request was sent */
  readonly gateStatus: number | undefined
  readonly outcome: Outcome
}

export interface GatedLoadOptions {
  readonly clients: number
  /** ids of existing orders, read with GET */
  readonly readIds: ReadonlyArray<string>
  /** every n-th request of a client is a POST */
  readonly writeEvery: number
  /** unique per scenario: references and idempotency keys start with it */
  readonly prefix: string
  /** pause between a client's requests */
  readonly pauseMs: number
  /** how often the gate polls each instance's `/health` (a readiness probe's period) */
  readonly pollMs: number
  /** the gate gives up on a poll after this long, and counts it as failing */
  readonly pollTimeoutMs: number
  /** the load ends by itself after this long, should `stop` never be called */
  readonly maxDurationMs: number
}

export interface GatedLoadResult {
  sent: number
  ok: number
  typed503: number
  /** what every answer that was neither 2xx nor a typed 503 said */
  other: Array<string>
  maxLatencyMs: number
  /** references whose POST was answered 201/200 */
  acknowledged: Set<string>
  /** every request, in order of its answer */
  requests: Array<GatedRequest>
  /** per instance, every `/health` poll in order */
  polls: Array<Array<HealthPoll>>
  /** the 50 ms waits of clients that found no instance passing and sent nothing */
  idleWaits: number
}

const pollHealth = async (baseUrl: string, timeoutMs: number): Promise<HealthPoll> => {
  const startedAt = Date.now()
  try {
    const response = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(timeoutMs) })
    const body = (await response.json().catch(() => ({}))) as { reason?: unknown }
    const reason = typeof body.reason === "string" ? body.reason : undefined
    return { startedAt, answeredAt: Date.now(), status: response.status, reason }
  } catch {
    return { startedAt, answeredAt: Date.now(), status: 0, reason: "no answer" }
  }
}

/**
 * A fleet behind a readiness gate, as Kubernetes or a load balancer runs one:
 * the gate polls every instance's `/health` every `pollMs`, and the load's
 * clients send each request to an instance whose last poll answered 200
 * (round robin among them); while none does, they send nothing. So an
 * instance whose health fails gets no traffic but the polls, and must find
 * its way back by its health check alone. A POST answered with a typed 503 is
 * sent again with the same Idempotency-Key (at most 5 times), to whichever
 * instance passes then. Runs until `stop()` or `maxDurationMs`; `result` can
 * be read while it runs.
 */
export const startGatedLoad = (baseUrls: ReadonlyArray<string>, options: GatedLoadOptions) => {
  const result: GatedLoadResult = {
    sent: 0,
    ok: 0,
    typed503: 0,
    other: [],
    maxLatencyMs: 0,
    acknowledged: new Set(),
    requests: [],
    polls: baseUrls.map(() => []),
    idleWaits: 0
  }
  const last: Array<HealthPoll | undefined> = baseUrls.map(() => undefined)
  const deadline = Date.now() + options.maxDurationMs
  let stopped = false
  const running = () => !stopped && Date.now() < deadline

  const gate = async (instance: number) => {
    while (running()) {
      const poll = await pollHealth(baseUrls[instance]!, options.pollTimeoutMs)
      result.polls[instance]!.push(poll)
      last[instance] = poll
      await sleep(Math.max(0, poll.startedAt + options.pollMs - Date.now()))
    }
  }

  let turn = 0
  /** an instance whose last poll passed, waited for; undefined once the load ends */
  const pick = async () => {
    while (running()) {
      const passing = last.flatMap((poll, instance) => (poll?.status === 200 ? [instance] : []))
      if (passing.length > 0) return passing[turn++ % passing.length]!
      result.idleWaits++
      await sleep(50)
    }
    return undefined
  }

  const send = async (method: "GET" | "POST", path: string, body?: unknown, key?: string) => {
    const instance = await pick()
    if (instance === undefined) return undefined
    const gateStatus = last[instance]?.status
    result.sent++
    const startedAt = Date.now()
    const answer = await exchange(method, `${baseUrls[instance]}${path}`, body, key)
    result.requests.push({ instance, startedAt, answeredAt: Date.now(), gateStatus, outcome: answer.outcome })
    result.maxLatencyMs = Math.max(result.maxLatencyMs, answer.latencyMs)
    if (answer.outcome === "ok") result.ok++
    else if (answer.outcome === "unavailable") result.typed503++
    else result.other.push(`instance ${instance}: ${answer.detail}`)
    return answer.outcome
  }

  const client = async (index: number) => {
    for (let n = 0; running(); n++) {
      if (n % options.writeEvery === options.writeEvery - 1) {
        const reference = `${options.prefix}-${index}-${n}`
        for (let attempt = 0; attempt < 5; attempt++) {
          const outcome = await send("POST", "/purchase-orders", { reference, totalCents: 100 + n }, reference)
          if (outcome === "ok") result.acknowledged.add(reference)
          if (outcome !== "unavailable" || !running()) break
          await sleep(200)
        }
      } else {
        await send("GET", `/purchase-orders/${options.readIds[(index + n) % options.readIds.length]!}`)
      }
      await sleep(options.pauseMs)
    }
  }

  const done = Promise.all([
    ...baseUrls.map((_, instance) => gate(instance)),
    ...Array.from({ length: options.clients }, (_, i) => client(i))
  ]).then(() => result)
  return {
    result,
    done,
    /** ends the load and the gate: every client finishes its request in flight */
    stop: () => {
      stopped = true
      return done
    }
  }
}

export const withClient = <A>(cluster: Cluster, f: (client: pg.Client) => Promise<A>, url = cluster.url) =>
  withUrl(url, f)

/** `withClient` for a database known by its URL alone (a node of an HA cluster). */
export const withUrl = withConnection

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
  /** the longest request, sent to answered; absent where the scenario does not measure it (printed "–") */
  readonly maxLatencyMs?: number | undefined
  /** the request budget it is held to */
  readonly budgetMs?: number | undefined
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
    [
      "scenario",
      "requests",
      "succeeded",
      "typed 503",
      "other failures",
      "unhandled errors",
      "rows expected (acknowledged)",
      "rows found",
      "health accuracy",
      "max latency / budget",
      "notes"
    ],
    rows.map((r) => [
      r.scenario,
      r.requests,
      r.ok,
      r.typed503,
      r.other,
      r.unhandled,
      r.rowsExpected,
      r.rowsFound,
      r.health,
      latencyText(r.maxLatencyMs, r.budgetMs),
      r.notes
    ])
  )

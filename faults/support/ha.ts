// Tools of the HA scenarios (ha.test.ts): load that mixes primary reads,
// replica-eligible list reads and writes; the service's routing metrics and
// per-node health; and a watch on which PostgreSQL nodes accept writes, so
// that a passing /health can be judged against the cluster's real state.
import { findPrimary, type PatroniCluster } from "@prisma-resilience/devdb"
import pg from "pg"
import { latencyText, markdownTable, sleep } from "./harness.js"

const PLATFORM_LIMIT_MS = 10_000

// ------------------------------------------------------------------- load

export type Kind = "post" | "get" | "list"

export interface Exchange {
  readonly kind: Kind
  readonly startedAt: number
  readonly answeredAt: number
  /** 0 when no HTTP answer came (connection error, the 10 s limit) */
  readonly status: number
  readonly outcome: "ok" | "unavailable" | "other"
}

export interface Tally {
  sent: number
  ok: number
  typed503: number
  other: number
}

export interface HaLoadResult {
  sent: number
  ok: number
  typed503: number
  /** what every answer that was neither 2xx nor a typed 503 said */
  other: Array<string>
  maxLatencyMs: number
  /** references whose POST was answered 201/200 */
  acknowledged: Set<string>
  byKind: Record<Kind, Tally>
  /** every request, in order of its answer */
  exchanges: Array<Exchange>
}

export interface HaLoadOptions {
  readonly clients: number
  /** ids of existing orders, read with GET /purchase-orders/:id (the primary) */
  readonly readIds: ReadonlyArray<string>
  /** every n-th request of a client is a POST */
  readonly writeEvery: number
  /** of the other requests, every n-th is GET /purchase-orders?limit=5 (opted into replicas) */
  readonly listEvery: number
  /** unique per scenario: references and idempotency keys start with it */
  readonly prefix: string
  readonly pauseMs: number
  /** the load ends by itself after this long, should `stop` never be called */
  readonly maxDurationMs: number
}

const tally = (): Tally => ({ sent: 0, ok: 0, typed503: 0, other: 0 })

/**
 * Bounded load on loopback, like the harness's `startLoad`, with a share of
 * list reads the service may send to a replica. A POST answered with a typed
 * 503 is sent again with the same Idempotency-Key (at most 5 times). Runs
 * until `stop()` or `maxDurationMs`; `result` can be read while it runs.
 */
export const startHaLoad = (baseUrl: string, options: HaLoadOptions) => {
  const result: HaLoadResult = {
    sent: 0,
    ok: 0,
    typed503: 0,
    other: [],
    maxLatencyMs: 0,
    acknowledged: new Set(),
    byKind: { post: tally(), get: tally(), list: tally() },
    exchanges: []
  }
  const deadline = Date.now() + options.maxDurationMs
  let stopped = false
  const running = () => !stopped && Date.now() < deadline

  const send = async (kind: Kind, url: string, body?: unknown, key?: string) => {
    result.sent++
    result.byKind[kind].sent++
    const startedAt = Date.now()
    const record = (status: number, outcome: Exchange["outcome"], detail?: string) => {
      const answeredAt = Date.now()
      result.maxLatencyMs = Math.max(result.maxLatencyMs, answeredAt - startedAt)
      result.exchanges.push({ kind, startedAt, answeredAt, status, outcome })
      if (outcome === "ok") {
        result.ok++
        result.byKind[kind].ok++
      } else if (outcome === "unavailable") {
        result.typed503++
        result.byKind[kind].typed503++
      } else {
        result.byKind[kind].other++
        result.other.push(`${kind} ${detail}`)
      }
      return outcome
    }
    try {
      const response = await fetch(url, {
        method: kind === "post" ? "POST" : "GET",
        headers: body === undefined ? {} : { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(PLATFORM_LIMIT_MS)
      })
      const text = await response.text()
      if (response.status === 200 || response.status === 201) return record(response.status, "ok")
      let tag: unknown
      try {
        tag = (JSON.parse(text) as { _tag?: unknown })._tag
      } catch {
        tag = undefined
      }
      if (response.status === 503 && response.headers.get("retry-after") !== null && tag === "DatabaseUnavailable") {
        return record(503, "unavailable")
      }
      return record(response.status, "other", `${response.status} ${text.slice(0, 200)}`)
    } catch (error) {
      return record(0, "other", `${(error as Error).name}: ${(error as Error).message}`)
    }
  }

  const client = async (index: number) => {
    for (let n = 0; running(); n++) {
      if (n % options.writeEvery === options.writeEvery - 1) {
        const reference = `${options.prefix}-${index}-${n}`
        for (let attempt = 0; attempt < 5; attempt++) {
          const outcome = await send("post", `${baseUrl}/purchase-orders`, { reference, totalCents: 100 + n }, reference)
          if (outcome === "ok") result.acknowledged.add(reference)
          if (outcome !== "unavailable" || !running()) break
          await sleep(200)
        }
      } else if (n % options.listEvery === 0) {
        await send("list", `${baseUrl}/purchase-orders?limit=5`)
      } else {
        const id = options.readIds[(index + n) % options.readIds.length]!
        await send("get", `${baseUrl}/purchase-orders/${id}`)
      }
      await sleep(options.pauseMs)
    }
  }

  const done = Promise.all(Array.from({ length: options.clients }, (_, i) => client(i))).then(() => result)
  return {
    result,
    done,
    /** ends the load: every client finishes its request in flight */
    stop: () => {
      stopped = true
      return done
    }
  }
}

/** the first write acknowledged (2xx) by a request sent after `at` */
export const firstWriteSentAfter = (result: HaLoadResult, at: number) =>
  result.exchanges
    .filter((e) => e.kind === "post" && e.outcome === "ok" && e.startedAt >= at)
    .sort((a, b) => a.answeredAt - b.answeredAt)[0]

/** the first write acknowledged (2xx) after `at` */
export const firstWriteAnsweredAfter = (result: HaLoadResult, at: number) =>
  result.exchanges.find((e) => e.kind === "post" && e.outcome === "ok" && e.answeredAt >= at)

// ---------------------------------------------------------------- metrics

export interface Series {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export const parseMetrics = (text: string): ReadonlyArray<Series> => {
  const series: Array<Series> = []
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (match === null) continue
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!
    series.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return series
}

export const scrape = async (baseUrl: string) => {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(PLATFORM_LIMIT_MS) })
  return parseMetrics(await response.text())
}

/** the sum of the series called `name` whose labels include `where` */
export const total = (series: ReadonlyArray<Series>, name: string, where: Record<string, string> = {}) =>
  series
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)

/** opted-in reads by where they went and why, from `db_replica_routing_total` */
export interface Routing {
  readonly replica: number
  readonly primary: number
  /** `target/reason` → count */
  readonly reasons: Readonly<Record<string, number>>
}

export const routing = (series: ReadonlyArray<Series>): Routing => {
  const reasons: Record<string, number> = {}
  for (const s of series.filter((s) => s.name === "db_replica_routing_total")) {
    const key = `${s.labels.target}/${s.labels.reason}`
    reasons[key] = (reasons[key] ?? 0) + s.value
  }
  return {
    replica: total(series, "db_replica_routing_total", { target: "replica" }),
    primary: total(series, "db_replica_routing_total", { target: "primary" }),
    reasons
  }
}

export const routingSince = (before: Routing, after: Routing): Routing => {
  const reasons: Record<string, number> = {}
  for (const key of new Set([...Object.keys(before.reasons), ...Object.keys(after.reasons)])) {
    const n = (after.reasons[key] ?? 0) - (before.reasons[key] ?? 0)
    if (n !== 0) reasons[key] = n
  }
  return { replica: after.replica - before.replica, primary: after.primary - before.primary, reasons }
}

export const routingText = (r: Routing) => {
  const all = r.replica + r.primary
  const parts = Object.entries(r.reasons).map(([key, n]) => `${key} ${n}`).join(", ")
  return all === 0 ? "no opted-in reads" : `${r.replica}/${all} to replicas (${parts})`
}

// ----------------------------------------------------------------- health

export interface NodeCheck {
  readonly componentId?: string
  readonly role?: string
  readonly status?: string
  readonly observedValue?: number
  readonly output?: string
}

export interface HealthSample {
  readonly startedAt: number
  readonly answeredAt: number
  /** 0 without an HTTP answer */
  readonly status: number
  readonly reason: string | undefined
  /** `checks["postgres:nodes"]`, empty when absent */
  readonly nodes: ReadonlyArray<NodeCheck>
}

export const health = async (baseUrl: string): Promise<HealthSample> => {
  const startedAt = Date.now()
  try {
    const response = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(PLATFORM_LIMIT_MS) })
    const body = (await response.json().catch(() => ({}))) as { reason?: string; checks?: Record<string, unknown> }
    const nodes = body.checks?.["postgres:nodes"]
    return {
      startedAt,
      answeredAt: Date.now(),
      status: response.status,
      reason: body.reason,
      nodes: Array.isArray(nodes) ? (nodes as Array<NodeCheck>) : []
    }
  } catch {
    return { startedAt, answeredAt: Date.now(), status: 0, reason: undefined, nodes: [] }
  }
}

/** `host:port` as health's `postgres:nodes` names a node */
export const componentId = (cluster: PatroniCluster, name: string) =>
  `127.0.0.1:${cluster.nodes.find((node) => node.name === name)!.pgPort}`

// ------------------------------------------------- which nodes take writes

/**
 * Asks every node `pg_is_in_recovery()` over one connection per node (made
 * again after an error). `undefined` for a node that does not answer within
 * a second: stopped, killed, restarting.
 */
export class NodeRoles {
  readonly #clients = new Map<string, Promise<pg.Client>>()

  constructor(readonly cluster: PatroniCluster) {}

  async inRecovery(name: string): Promise<boolean | undefined> {
    let connecting = this.#clients.get(name)
    if (connecting === undefined) {
      const client = new pg.Client({
        connectionString: this.cluster.nodeUrl(name),
        connectionTimeoutMillis: 1000,
        query_timeout: 1000
      })
      // a node that goes away must fail this client's query, not the test process
      client.on("error", () => {})
      connecting = client.connect().then(() => client)
      connecting.catch(() => {})
      this.#clients.set(name, connecting)
    }
    try {
      const client = await connecting
      const { rows } = await client.query<{ recovery: boolean }>("SELECT pg_is_in_recovery() AS recovery")
      return rows[0]!.recovery
    } catch {
      if (this.#clients.get(name) === connecting) this.#clients.delete(name)
      void connecting.then((client) => client.end()).catch(() => {})
      return undefined
    }
  }

  /** the names of the nodes that answered "not in recovery" */
  async writable() {
    const answers = await Promise.all(this.cluster.nodes.map(async (node) => [node.name, await this.inRecovery(node.name)] as const))
    return answers.filter(([, recovery]) => recovery === false).map(([name]) => name)
  }

  async close() {
    const clients = [...this.#clients.values()]
    this.#clients.clear()
    await Promise.all(clients.map((c) => c.then((client) => client.end()).catch(() => {})))
  }
}

export interface HealthWatch {
  readonly samples: number
  readonly passes: number
  /** `/health` passed while no node accepted writes, checked right before and right after it */
  readonly passWithoutWriter: Array<string>
  /**
   * `/health` passed naming as primary a node that had been in recovery for over a second before
   * (four node checks at 250 ms): the service's writer was read-only
   */
  readonly passWithReadOnlyPrimary: Array<string>
  readonly last: HealthSample | undefined
}

/**
 * `/health` every 100 ms, each sample between two looks at which nodes
 * accept writes. Separate chains, not one after the other, so that a slow
 * answer does not thin out the samples taken while the cluster changes.
 */
export const watchHealth = (baseUrl: string, roles: NodeRoles) => {
  const watch = {
    samples: 0,
    passes: 0,
    passWithoutWriter: [] as Array<string>,
    passWithReadOnlyPrimary: [] as Array<string>,
    last: undefined as HealthSample | undefined
  }
  // when each node was first seen in recovery without a break since
  const readOnlySince = new Map<string, number>()
  const look = async () => {
    const at = Date.now()
    const answers = await Promise.all(roles.cluster.nodes.map(async (node) => [node, await roles.inRecovery(node.name)] as const))
    for (const [node, recovery] of answers) {
      if (recovery === true) {
        if (!readOnlySince.has(node.name)) readOnlySince.set(node.name, at)
      } else readOnlySince.delete(node.name)
    }
    return answers
  }
  let running = true
  const chains: Array<Promise<void>> = []
  const loop = (async () => {
    const started = Date.now()
    for (let tick = 1; running; tick++) {
      chains.push(
        (async () => {
          const before = await look()
          const sample = await health(baseUrl)
          const after = await look()
          watch.samples++
          if (watch.last === undefined || sample.startedAt > watch.last.startedAt) watch.last = sample
          if (sample.status !== 200) return
          watch.passes++
          const writable = (answers: typeof before) => answers.filter(([, recovery]) => recovery === false)
          if (writable(before).length === 0 && writable(after).length === 0) {
            watch.passWithoutWriter.push(`${new Date(sample.startedAt).toISOString()} nodes ${JSON.stringify(sample.nodes)}`)
          }
          for (const entry of sample.nodes.filter((n) => n.role === "primary")) {
            const node = roles.cluster.nodes.find((n) => `127.0.0.1:${n.pgPort}` === entry.componentId)
            const since = node && readOnlySince.get(node.name)
            const stillReadOnly = node && after.some(([n, recovery]) => n.name === node.name && recovery === true)
            if (since !== undefined && since + 1000 < sample.startedAt && stillReadOnly) {
              watch.passWithReadOnlyPrimary.push(
                `${new Date(sample.startedAt).toISOString()} ${entry.componentId} listed as primary, in recovery since ${
                  new Date(since).toISOString()
                }`
              )
            }
          }
        })().catch(() => {})
      )
      await sleep(Math.max(0, started + tick * 100 - Date.now()))
    }
  })()
  return {
    watch: watch as HealthWatch,
    stop: async (): Promise<HealthWatch> => {
      running = false
      await loop
      await Promise.all(chains)
      return watch
    }
  }
}

// ---------------------------------------------------------------- cluster

/** the node that accepts writes, waited for (a failover takes a while) */
export const waitPrimary = async (cluster: PatroniCluster, timeoutMs = 45_000, not?: string) =>
  (await cluster.waitFor(
    async () => {
      const primary = await findPrimary(cluster)
      return primary !== undefined && primary.name !== not && primary
    },
    timeoutMs,
    not === undefined ? "a writable node" : `a writable node other than ${not}`
  ))

/**
 * resolves with the Date.now() at which `name` first answered "not in recovery", asked every 20 ms over one
 * connection: a finer mark of a promotion than polling Patroni, whose REST answers take longer
 */
export const waitWritable = async (roles: NodeRoles, name: string, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if ((await roles.inRecovery(name)) === false) return Date.now()
    await sleep(20)
  }
  throw new Error(`${name} did not accept writes within ${timeoutMs / 1000} s`)
}

/** `db_writer_discoveries_total` by result, since `before` */
export const discoveriesSince = (before: ReadonlyArray<Series>, after: ReadonlyArray<Series>) => {
  const by = (result: string) =>
    total(after, "db_writer_discoveries_total", { result }) - total(before, "db_writer_discoveries_total", { result })
  return { changed: by("changed"), unchanged: by("unchanged"), failed: by("failed") }
}

export const discoveriesText = (d: ReturnType<typeof discoveriesSince>) =>
  `writer discoveries: ${d.changed} changed, ${d.unchanged} unchanged, ${d.failed} failed`

/** hides the cluster's passwords in text that is about to be printed */
export const redactor = (cluster: PatroniCluster) => {
  const secrets = [cluster.url, ...cluster.nodes.map((n) => cluster.nodeUrl(n.name))]
    .map((url) => /^postgresql:\/\/[^:]*:([^@]+)@/.exec(url)?.[1])
    .filter((s): s is string => s !== undefined && s.length > 0)
  const all = [...new Set(secrets.flatMap((s) => [s, decodeURIComponent(s)]))]
  return (text: string) => all.reduce((out, secret) => out.split(secret).join("***"), text)
}

// ------------------------------------------------------------------ table

export interface HaRow {
  readonly scenario: string
  readonly requests: number
  readonly ok: number
  readonly typed503: number
  readonly other: number
  readonly lost: number | string
  readonly duplicated: number | string
  readonly maxLatencyMs: number
  /** the request budget the service runs with, which no request may outlast by more than 100 ms */
  readonly budgetMs: number
  readonly figures: string
}

export const haTable = (rows: ReadonlyArray<HaRow>) =>
  markdownTable(
    [
      "scenario",
      "requests",
      "succeeded",
      "typed 503",
      "other failures",
      "writes lost",
      "writes duplicated",
      "max latency / budget",
      "figures"
    ],
    rows.map((r) => [
      r.scenario,
      r.requests,
      r.ok,
      r.typed503,
      r.other,
      r.lost,
      r.duplicated,
      latencyText(r.maxLatencyMs, r.budgetMs),
      r.figures
    ])
  )

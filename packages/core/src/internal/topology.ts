/**
 * The nodes behind one `Database`: the writer a multi-host connection string
 * leads to, the replicas opted-in reads may use, a probe of every node every
 * DB_NODE_CHECK_INTERVAL_MS (role; the writer's WAL end and each replica's
 * replay position, from which a replica's lag behind the writer follows: see
 * the kernel's "replica lag"), and the one search for the writer that a
 * failover starts and every request in flight shares.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as CircuitBreaker from "@prisma-resilience/kernel/circuitBreaker"
import { classify } from "../Classify.js"
import { ConnectionError, type DatabaseError, TimeoutError } from "../Errors.js"
import type { NodeHealth } from "../Errors.js"
import * as Metrics from "./metrics.js"
import { describe } from "@prisma-resilience/kernel/describe"
import { redact } from "@prisma-resilience/kernel/redact"
import * as Kernel from "@prisma-resilience/kernel/topology"
import type { PoolSettings, PrismaClientLike, TopologyConfig } from "../DatabaseService.js"

/** The `code` of the failure of a wait for the writer that ran out of budget. */
export const NO_WRITER = "NO_WRITER"
/** The `code` of a warm-up whose client factory connects every node to one server. */
export const WRONG_SERVER = "WRONG_SERVER"
/** The `code` of a probe that found the writer in recovery or read-only. */
export const NOT_WRITABLE = "NOT_WRITABLE"

/** How often the search for a writer probes the nodes while none is writable. */
const DISCOVERY_POLL_MS = 250

/** A replica's own client, breaker and recorder, for opted-in reads. */
export interface Replica<C> {
  readonly name: string
  readonly client: C
  readonly breaker: CircuitBreaker.CircuitBreaker
}

interface Node<C> {
  readonly name: string
  readonly url: string
  /** one connection for probes, made on first use */
  probe: C | undefined
  state: Kernel.NodeState
}

interface ProbeRow {
  in_recovery: boolean
  read_only: boolean
  wal_lsn: string | null
  replay_lsn: string | null
  block_size: number
  segment_size: number
  server: string | null
}

// WAL control functions fail in recovery, hence the CASE (the function is
// volatile, so it is not evaluated ahead). The sizes place page headers (`walEnd`).
const probeOf = <C extends PrismaClientLike>(client: C, timeoutMs: number, name: string) =>
  Effect.tryPromise({
    try: () =>
      client.$queryRaw`SELECT pg_is_in_recovery() AS in_recovery,
        current_setting('transaction_read_only') = 'on' AS read_only,
        CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_insert_lsn()::text END AS wal_lsn,
        pg_last_wal_replay_lsn()::text AS replay_lsn,
        current_setting('wal_block_size')::int AS block_size,
        pg_size_bytes(current_setting('wal_segment_size'))::int AS segment_size,
        coalesce(host(inet_server_addr()), 'local') || ':' || coalesce(inet_server_port()::text, '') || '@' ||
          pg_postmaster_start_time()::text AS server` as Promise<ReadonlyArray<ProbeRow>>,
    catch: (error) => classify(error, { operation: `probe ${name}`, attempt: 1 })
  }).pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(timeoutMs),
      orElse: () =>
        Effect.fail(
          new TimeoutError({
            operation: `probe ${name}`,
            attempt: 1,
            safety: "ambiguous",
            code: "PROBE_TIMEOUT",
            message: `the probe of ${name} did not answer within ${timeoutMs} ms`,
            cause: undefined
          })
        )
    }),
    Effect.map((rows): Kernel.Probe => {
      const row = rows[0]!
      const wal = Kernel.parseLsn(row.wal_lsn)
      return {
        inRecovery: row.in_recovery,
        readOnly: row.read_only,
        walLsn: wal === undefined || row.in_recovery ? undefined : Kernel.walEnd(wal, row.block_size, row.segment_size),
        replayLsn: row.in_recovery ? Kernel.parseLsn(row.replay_lsn) : undefined,
        server: row.server ?? undefined
      }
    })
  )

export interface MakeOptions<C extends PrismaClientLike> {
  readonly name: string
  /** the writer's nodes; undefined for a plain connection string, used as it is */
  readonly plan: Kernel.Plan | undefined
  /** the plain connection string, when there is no plan */
  readonly url: string | undefined
  readonly replicaUrls: ReadonlyArray<string>
  readonly makeClient: (pool: PoolSettings) => C
  readonly config: TopologyConfig
  readonly probeTimeoutMs: number
  /** how long one search for the writer goes on */
  readonly discoveryTimeoutMs: number
  readonly shutdownTimeoutMs: number
  readonly makeBreaker: (node: string) => CircuitBreaker.CircuitBreaker
}

/** What the layer calls when the search found another writer. */
export type OnWriter<C> = (client: C, node: string) => Effect.Effect<C | undefined>

export interface Topology<C extends PrismaClientLike> {
  /** nodes to watch: a multi-host string or replicas */
  readonly active: boolean
  /** whether the writer must be found and checked (`target_session_attrs` read-write or primary) */
  readonly writerMode: boolean
  readonly replicas: ReadonlyArray<Replica<C>>
  /** the connection string for a warm-up attempt and the node it is: the writer found now, or a failure */
  readonly target: (operation: string, attempt: number) => Effect.Effect<
    { readonly url: string | undefined; readonly node: string | undefined },
    DatabaseError
  >
  /** whether a client connected to `node` is one the connection string asks for: a probe of it */
  readonly verify: (client: C, node: string | undefined) => Effect.Effect<void, DatabaseError>
  /** starts the node checks; `writer()` names the node the queries go to now */
  readonly start: (writer: () => string | undefined, onWriter: OnWriter<C>) => Effect.Effect<void, never, Scope.Scope>
  /** a search for the writer is running */
  readonly discovering: () => boolean
  /** starts a search unless one runs; `why` goes to the log */
  readonly discover: (why: string) => void
  /** waits for the running search, if any, until `deadlineMs` */
  readonly awaitWriter: (deadlineMs: number, now: number, operation: string, attempt: number) => Effect.Effect<void, DatabaseError>
  /** the replica for the next opted-in read, or why none */
  readonly pick: (now: number) => Replica<C> | Kernel.RoutingReason
  readonly nodes: (now: number, writer: string | undefined) => ReadonlyArray<NodeHealth>
}

const initial = (name: string): Kernel.NodeState => ({
  name,
  role: "unknown",
  replayLsn: undefined,
  checkedAt: 0,
  error: undefined
})

// A probe's message may name the node's connection string.
const describeRedacted = (error: DatabaseError) => redact(describe(error))

/** Everything one topology knows and shares between its parts. */
interface Nodes<C extends PrismaClientLike> {
  readonly options: MakeOptions<C>
  /**
   * The `Database`'s Effect clock, in epoch ms. Every time here is local:
   * the writer's WAL positions are dated by this clock when the probe
   * leaves, and a replica's lag is this clock's now minus the date of the
   * position it replayed; no server timestamp is compared with it, so a
   * `TestClock` (or a skewed host clock) keeps the lag consistent.
   */
  readonly now: () => number
  readonly pool: PoolSettings
  readonly all: Map<string, Node<C>>
  /** the nodes the writer may be on: a multi-host string's, or the plain string's when there are replicas */
  readonly writerNodes: ReadonlyArray<Node<C>>
  readonly replicas: ReadonlyArray<Replica<C>>
  readonly replicaNames: ReadonlySet<string>
  readonly writerMode: boolean
  readonly attrs: Kernel.Plan["targetSessionAttrs"]
  readonly probePool: PoolSettings
  readonly checkEveryMs: number
  readonly staleMs: number
  /** every client made, for the finalizer */
  readonly clients: Array<C>
  /** the writer's WAL end over time, against which every replica's replay is measured */
  history: Kernel.WriterHistory | undefined
  /** set by `start`: the node the queries go to */
  writerName: () => string | undefined
  /** the running search for the writer, if any */
  search: Deferred.Deferred<void> | undefined
  /** set by `start`: forks into the topology's scope, and the search itself */
  run: ((effect: Effect.Effect<void>) => unknown) | undefined
  findWriter: ((why: string) => Effect.Effect<void>) | undefined
  /** round robin over the replicas */
  cursor: number
}

const newClient = <C extends PrismaClientLike>(st: Pick<Nodes<C>, "options" | "clients">, settings: PoolSettings) => {
  const client = st.options.makeClient(settings)
  st.clients.push(client)
  return client
}

/** The nodes of `options`' connection strings. */
const nodesOf = <C extends PrismaClientLike>(options: MakeOptions<C>, pool: PoolSettings, now: () => number): Nodes<C> => {
  const { plan } = options
  const all = new Map<string, Node<C>>()
  const nodeFor = (name: string, url: string) => {
    let node = all.get(name)
    if (node === undefined) {
      node = { name, url, probe: undefined, state: initial(name) }
      all.set(name, node)
    }
    return node
  }
  const writerNodes = plan === undefined ? [] : plan.hosts.map((host, index) => nodeFor(host, plan.url(index)))
  const replicaNodes = options.replicaUrls.map((url) => nodeFor(Kernel.nameOf(url), url))
  if (plan === undefined && options.url !== undefined && replicaNodes.length > 0) {
    // The writer is probed too, so that health lists it with the replicas and its WAL end is known.
    let name = "primary"
    try {
      name = Kernel.nameOf(options.url)
    } catch {
      // a plain string pg accepts but the kernel cannot name (a socket directory): "primary"
    }
    writerNodes.push(nodeFor(name, options.url))
  }
  const checkEveryMs = Kernel.checkIntervalMs(options.config, replicaNodes.length)
  const clients: Array<C> = []
  const replicas = replicaNodes.map((node): Replica<C> => ({
    name: node.name,
    client: newClient({ options, clients }, { ...pool, connectionString: node.url }),
    breaker: options.makeBreaker(node.name)
  }))
  return {
    options,
    pool,
    all,
    writerNodes,
    replicas,
    replicaNames: new Set(replicas.map((replica) => replica.name)),
    writerMode: plan !== undefined && Kernel.needsWriter(plan.targetSessionAttrs),
    attrs: plan?.targetSessionAttrs ?? "any",
    probePool: {
      ...pool,
      max: 1,
      connectionTimeoutMillis: Math.min(pool.connectionTimeoutMillis, options.probeTimeoutMs),
      statement_timeout: options.probeTimeoutMs,
      lock_timeout: options.probeTimeoutMs
    },
    now,
    checkEveryMs,
    staleMs: 3 * checkEveryMs + options.probeTimeoutMs,
    clients,
    history: undefined,
    writerName: () => undefined,
    search: undefined,
    run: undefined,
    findWriter: undefined,
    cursor: 0
  }
}

/** Keeps what a probe of `node` found (nothing, when it failed), and the writer's WAL end. */
const record = <C extends PrismaClientLike>(
  st: Nodes<C>,
  node: Node<C>,
  result: Kernel.Probe | undefined,
  error: string | undefined,
  sentAt = 0
) => {
  node.state = { name: node.name, role: Kernel.roleOf(result), replayLsn: result?.replayLsn, checkedAt: st.now(), error }
  if (result?.walLsn !== undefined && node.name === st.writerName()) {
    st.history = Kernel.recordWriter(st.history, node.name, { at: sentAt, lsn: result.walLsn })
  }
  const labels = Metrics.nodeLabels(st.options.name, node.name)
  Metrics.record(Metrics.nodeUp, result === undefined ? 0 : 1, labels)
  Metrics.record(Metrics.nodePrimary, result !== undefined && !result.inRecovery ? 1 : 0, labels)
}

/** Probes `node` on its own connection; undefined when it did not answer. */
const probe = <C extends PrismaClientLike>(st: Nodes<C>, node: Node<C>): Effect.Effect<Kernel.Probe | undefined> =>
  Effect.suspend(() => {
    node.probe ??= newClient(st, { ...st.probePool, connectionString: node.url })
    // The writer's WAL end is dated when the probe leaves: a commit
    // acknowledged before then is inside the position it answers.
    const sentAt = st.now()
    return probeOf(node.probe, st.options.probeTimeoutMs, node.name).pipe(
      Effect.map((result): Kernel.Probe | undefined => result),
      Effect.catch((error) => Effect.as(Effect.sync(() => record(st, node, undefined, describeRedacted(error))), undefined)),
      Effect.tap((result) => result === undefined ? Effect.void : Effect.sync(() => record(st, node, result, undefined, sentAt)))
    )
  })

/** How far behind the writer `state`'s node is at `now`, at most; undefined: cannot be told. */
const lagOf = <C extends PrismaClientLike>(st: Nodes<C>, state: Kernel.NodeState, now: number) =>
  state.role === "replica" ? Kernel.lagOf(st.history, state.replayLsn, now, st.staleMs) : undefined

const noWriter = (operation: string, attempt: number, message: string) =>
  new ConnectionError({ operation, attempt, safety: "before-send", code: NO_WRITER, message, cause: undefined })

const wrongServer = (operation: string, attempt: number, a: string, b: string) =>
  // Not retryable: every attempt would connect the same way.
  new ConnectionError({
    operation,
    attempt,
    safety: "never",
    code: WRONG_SERVER,
    message: `nodes ${a} and ${b} of the connection string answer as one server: the client factory ` +
      "does not connect where pool.connectionString says. Pass pool to the adapter whole " +
      "(new PrismaPg(pool)); overriding its connectionString defeats failover",
    cause: undefined
  })

/** See `Topology.target`. */
const target = <C extends PrismaClientLike>(st: Nodes<C>): Topology<C>["target"] => (operation, attempt) => {
  const { plan } = st.options
  if (plan === undefined) return Effect.succeed({ url: st.options.url, node: st.writerNodes[0]?.name })
  return Effect.flatMap(Effect.forEach(st.writerNodes, (node) => probe(st, node), { concurrency: "unbounded" }), (probes) => {
    const same = Kernel.sameServer(probes)
    if (same !== undefined) {
      return Effect.fail(wrongServer(operation, attempt, st.writerNodes[same[0]]!.name, st.writerNodes[same[1]]!.name))
    }
    const index = Kernel.choose(st.attrs, probes)
    if (index === undefined) {
      const seen = st.writerNodes.map((node) =>
        `${node.name} ${node.state.role}${node.state.error === undefined ? "" : ` (${node.state.error})`}`
      ).join(", ")
      return Effect.fail(noWriter(operation, attempt, `no node fit for target_session_attrs=${st.attrs} (${seen})`))
    }
    return Effect.succeed({ url: plan.url(index), node: st.writerNodes[index]!.name })
  })
}

/** See `Topology.verify`. */
const verify = <C extends PrismaClientLike>(st: Nodes<C>): Topology<C>["verify"] => (client, node) =>
  !st.writerMode
    ? Effect.void
    : Effect.flatMap(probeOf(client, st.options.probeTimeoutMs, node ?? "writer"), (result) =>
      Kernel.accepts(st.attrs, result)
        ? Effect.void
        : Effect.fail(
          new ConnectionError({
            operation: "verify",
            attempt: 1,
            safety: "before-send",
            code: NOT_WRITABLE,
            message: `${node ?? "the node"} is ${result.inRecovery ? "in recovery" : "read-only"}: not a writer`,
            cause: undefined
          })
        ))

/** See `Topology.discover`. */
const discover = <C extends PrismaClientLike>(st: Nodes<C>) => (why: string) => {
  if (!st.writerMode || st.search !== undefined || st.run === undefined || st.findWriter === undefined) return
  const done = Deferred.makeUnsafe<void>()
  st.search = done
  st.run(st.findWriter(why).pipe(
    Effect.ensuring(Effect.suspend(() => {
      st.search = undefined
      return Deferred.succeed(done, undefined)
    }))
  ))
}

const disconnectSoon = <C extends PrismaClientLike>(st: Nodes<C>, client: C) =>
  Effect.ignore(Effect.timeout(Effect.tryPromise(() => client.$disconnect()), st.options.shutdownTimeoutMs))

/** Connects to the writer `found` and hands it to `onWriter`; false when it did not verify. */
const takeWriter = <C extends PrismaClientLike>(
  st: Nodes<C>,
  found: { readonly url: string | undefined; readonly node: string | undefined },
  before: string | undefined,
  started: number,
  onWriter: OnWriter<C>
) =>
  Effect.gen(function*() {
    const client = st.options.makeClient({ ...st.pool, connectionString: found.url })
    const connected = yield* Effect.tryPromise({
      try: () => client.$connect(),
      catch: (error) => classify(error, { operation: "discovery", attempt: 1 })
    }).pipe(Effect.andThen(verify(st)(client, found.node)), Effect.result)
    if (connected._tag === "Failure") {
      yield* disconnectSoon(st, client)
      return false
    }
    const old = yield* onWriter(client, found.node!)
    Metrics.record(Metrics.writerDiscoveries, 1, Metrics.discoveryLabels(st.options.name, "changed"))
    yield* Effect.logWarning(
      `Writer discovery: ${found.node} is the writer now (was ${before ?? "unknown"}), found in ${st.now() - started} ms`
    )
    // Queries still running on the old writer finish or fail there first.
    if (old !== undefined) yield* Effect.forkDetach(disconnectSoon(st, old))
    return true
  })

/** The one search for the writer: polls the nodes until one verifies as the writer, or DB_WARMUP_TIMEOUT_MS passes. */
const findWriter = <C extends PrismaClientLike>(st: Nodes<C>, writer: () => string | undefined, onWriter: OnWriter<C>) =>
(why: string) =>
  Effect.gen(function*() {
    const started = st.now()
    const before = writer()
    const count = (result: string) => Metrics.record(Metrics.writerDiscoveries, 1, Metrics.discoveryLabels(st.options.name, result))
    yield* Effect.logWarning(`Writer discovery: started after ${why}; writer was ${before ?? "unknown"}`)
    while (true) {
      const found = yield* Effect.result(target(st)("discovery", 1))
      if (found._tag === "Success" && found.success.node === before) {
        count("unchanged")
        return yield* Effect.logInfo(`Writer discovery: ${before} is still the writer (${st.now() - started} ms)`)
      }
      if (found._tag === "Success" && (yield* takeWriter(st, found.success, before, started, onWriter))) return
      if (st.now() - started >= st.options.discoveryTimeoutMs) {
        count("failed")
        return yield* Effect.logError(
          `Writer discovery: no writer found in ${st.now() - started} ms (${
            found._tag === "Failure" ? describeRedacted(found.failure) : "the writer found did not verify"
          }); the next failure searches again`
        )
      }
      yield* Effect.sleep(Duration.millis(DISCOVERY_POLL_MS))
    }
  })

/**
 * db_node_replay_lag_seconds after each check: 0 on a primary, the lag on a
 * replica, +Inf on a replica whose lag cannot be told and on an unreachable
 * configured replica. Never 0 for "unknown", which is what the replica alone
 * would say when cut off; +Inf (not NaN, which compares false with
 * everything) lets a `> threshold` alert fire on it.
 */
const publishLag = <C extends PrismaClientLike>(st: Nodes<C>, now: number) => {
  for (const node of st.all.values()) {
    const { role } = node.state
    const value = role === "primary"
      ? 0
      : role === "replica" || (role === "unreachable" && st.replicaNames.has(node.name))
      ? (lagOf(st, node.state, now) ?? Infinity) / 1000
      : undefined
    if (value !== undefined) Metrics.record(Metrics.nodeReplayLag, value, Metrics.nodeLabels(st.options.name, node.name))
  }
}

/** See `Topology.start`: the node checks every `checkEveryMs`, and the search it may start. */
const start = <C extends PrismaClientLike>(st: Nodes<C>, active: boolean): Topology<C>["start"] => (writer, onWriter) =>
  Effect.gen(function*() {
    if (!active) return
    st.writerName = writer
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const fibers = yield* FiberSet.make<void, never>()
    st.run = (effect) => FiberSet.addUnsafe(fibers, runFork(effect))
    st.findWriter = findWriter(st, writer, onWriter)
    const checkAll = Effect.gen(function*() {
      yield* Effect.forEach([...st.all.values()], (node) => probe(st, node), { concurrency: "unbounded", discard: true })
      publishLag(st, st.now())
      const current = writer()
      if (!st.writerMode || current === undefined || st.search !== undefined) return
      const state = st.all.get(current)?.state
      if (state !== undefined && state.role !== "primary") discover(st)(`the check found the writer ${current} ${state.role}`)
    })
    yield* Effect.forkScoped(Effect.repeat(checkAll, Schedule.spaced(Duration.millis(st.checkEveryMs))))
  })

/** See `Topology.awaitWriter`. */
const awaitWriter = <C extends PrismaClientLike>(st: Nodes<C>): Topology<C>["awaitWriter"] =>
(deadlineMs, now, operation, attempt) => {
  const current = st.search
  if (current === undefined) return Effect.void
  const waitMs = Math.max(0, deadlineMs - now)
  return Deferred.await(current).pipe(
    Effect.timeoutOrElse({
      duration: Duration.millis(waitMs),
      orElse: () =>
        Effect.fail(noWriter(operation, attempt, `no writer yet: the search for it outlasted the ${waitMs} ms left of the request`))
    })
  )
}

/** See `Topology.pick`. */
const pick = <C extends PrismaClientLike>(st: Nodes<C>): Topology<C>["pick"] => (now) => {
  const wallNow = st.now()
  const candidates = st.replicas.map((replica): Kernel.Candidate => {
    const state = st.all.get(replica.name)!.state
    return { state, admits: replica.breaker.state(now) !== "open", lagMs: lagOf(st, state, wallNow) }
  })
  const limits = { maxLagMs: st.options.config.replicaMaxLagMs, staleMs: st.staleMs }
  const picked = Kernel.pickReplica(candidates, wallNow, limits, st.cursor)
  if ("index" in picked) {
    st.cursor = picked.index + 1
    return st.replicas[picked.index]!
  }
  return picked.reason
}

/** See `Topology.nodes`. */
const nodesNow = <C extends PrismaClientLike>(st: Nodes<C>): Topology<C>["nodes"] => {
  const breakers = new Map(st.replicas.map((replica) => [replica.name, replica.breaker]))
  return (now, writer) => {
    const wallNow = st.now()
    return [...st.all.values()].map((node): NodeHealth => {
      const { checkedAt, error, role } = node.state
      const breaker = breakers.get(node.name)
      const lagMs = lagOf(st, node.state, wallNow)
      return {
        name: node.name,
        role,
        serves: node.name === writer ? "writer" : st.replicaNames.has(node.name) ? "replica" : "none",
        ...(lagMs === undefined ? {} : { lagMs }),
        ...(role === "replica" ? { lag: Kernel.lagState(lagMs, st.options.config.replicaMaxLagMs) } : {}),
        ...(checkedAt === 0 ? {} : { checkedAgoMs: Math.max(0, wallNow - checkedAt) }),
        ...(breaker === undefined ? {} : { circuit: breaker.state(now) }),
        ...(error === undefined ? {} : { error })
      }
    })
  }
}

/** The topology of `options`; its clients are disconnected when the scope closes. */
export const make = <C extends PrismaClientLike>(
  options: MakeOptions<C>,
  pool: PoolSettings
): Effect.Effect<Topology<C>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const st = nodesOf(options, pool, () => clock.currentTimeMillisUnsafe())
    yield* Effect.addFinalizer(() =>
      Effect.forEach(st.clients, (client) => disconnectSoon(st, client), { concurrency: "unbounded", discard: true })
    )
    if (st.replicas.length > 0 && st.writerNodes.length === 0) {
      // Without the writer's own connection string its WAL end cannot be read,
      // so no replica's lag can be told: say so once rather than route silently.
      yield* Effect.logWarning(
        "Replicas are configured but the writer's connection string is not (no url / DATABASE_URL): " +
          "their lag behind the writer cannot be measured, so they serve no reads"
      )
    }
    const active = options.plan !== undefined || st.replicas.length > 0
    return {
      active,
      writerMode: st.writerMode,
      replicas: st.replicas,
      target: target(st),
      verify: verify(st),
      start: start(st, active),
      discovering: () => st.search !== undefined,
      discover: discover(st),
      awaitWriter: awaitWriter(st),
      pick: pick(st),
      nodes: nodesNow(st)
    }
  })

/**
 * The nodes behind one `Database`: the writer a multi-host connection string
 * leads to, the replicas opted-in reads may use, a probe of every node every
 * DB_NODE_CHECK_INTERVAL_MS (role; the writer's WAL end and each replica's
 * replay position, from which a replica's lag behind the writer follows: see
 * the kernel's "replica lag"), and the one search for the writer that a
 * failover starts and every request in flight shares.
 */
import { Deferred, Duration, Effect, FiberId, FiberSet, Runtime, Schedule, type Scope } from "effect"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import { classify } from "../Classify.js"
import { ConnectionError, type DatabaseError, TimeoutError } from "../Errors.js"
import type { NodeHealth } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import { describe } from "./describe.js"
import { redact } from "../kernel/redact.js"
import * as Kernel from "../kernel/topology.js"
import type { PoolSettings, PrismaClientLike } from "../DatabaseService.js"

/** The `code` of the failure of a wait for the writer that ran out of budget. */
export const NO_WRITER = "NO_WRITER"
/** The `code` of a warm-up whose client factory connects every node to one server. */
export const WRONG_SERVER = "WRONG_SERVER"
/** The `code` of a probe that found the writer in recovery or read-only. */
export const NOT_WRITABLE = "NOT_WRITABLE"

/** How often the search for a writer probes the nodes while none is writable. */
const DISCOVERY_POLL_MS = 250

export interface TopologyConfig {
  /** DB_REPLICA_MAX_LAG_MS: a replica further behind the writer, or whose lag cannot be told, serves no reads */
  readonly replicaMaxLagMs: number
  /**
   * DB_NODE_CHECK_INTERVAL_MS: how often every node's role and WAL position
   * are read; with replicas at most a quarter of the lag limit (`Kernel.checkIntervalMs`)
   */
  readonly nodeCheckIntervalMs: number
}

export const defaults: TopologyConfig = { replicaMaxLagMs: 1000, nodeCheckIntervalMs: 1000 }

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
    Effect.timeoutFail({
      duration: Duration.millis(timeoutMs),
      onTimeout: () =>
        new TimeoutError({
          operation: `probe ${name}`,
          attempt: 1,
          safety: "ambiguous",
          code: "PROBE_TIMEOUT",
          message: `the probe of ${name} did not answer within ${timeoutMs} ms`,
          cause: undefined
        })
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

export const make = <C extends PrismaClientLike>(
  options: MakeOptions<C>,
  pool: PoolSettings
): Effect.Effect<Topology<C>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { config, plan } = options
    const nodes = new Map<string, Node<C>>()
    const nodeFor = (name: string, url: string) => {
      let node = nodes.get(name)
      if (node === undefined) {
        node = { name, url, probe: undefined, state: initial(name) }
        nodes.set(name, node)
      }
      return node
    }
    const writerNodes = plan === undefined ? [] : plan.hosts.map((host, index) => nodeFor(host, plan.url(index)))
    const replicaNodes = options.replicaUrls.map((url) => nodeFor(Kernel.nameOf(url), url))
    if (plan === undefined && options.url !== undefined && replicaNodes.length > 0) {
      // The writer is probed too, so that health lists it with the replicas.
      const name = (() => {
        try {
          return Kernel.nameOf(options.url)
        } catch {
          return "primary"
        }
      })()
      writerNodes.push(nodeFor(name, options.url))
    }
    const active = plan !== undefined || replicaNodes.length > 0
    if (replicaNodes.length > 0 && writerNodes.length === 0) {
      // Without the writer's own connection string its WAL end cannot be read,
      // so no replica's lag can be told: say so once rather than route silently.
      yield* Effect.logWarning(
        "Replicas are configured but the writer's connection string is not (no url / DATABASE_URL): " +
          "their lag behind the writer cannot be measured, so they serve no reads"
      )
    }
    const writerMode = plan !== undefined && Kernel.needsWriter(plan.targetSessionAttrs)
    const attrs = plan?.targetSessionAttrs ?? "any"
    const probePool: PoolSettings = {
      ...pool,
      max: 1,
      connectionTimeoutMillis: Math.min(pool.connectionTimeoutMillis, options.probeTimeoutMs),
      statement_timeout: options.probeTimeoutMs,
      lock_timeout: options.probeTimeoutMs
    }

    const clients: Array<C> = []
    yield* Effect.addFinalizer(() =>
      Effect.forEach(
        clients,
        (client) => Effect.ignore(Effect.timeout(Effect.tryPromise(() => client.$disconnect()), options.shutdownTimeoutMs)),
        { concurrency: "unbounded", discard: true }
      )
    )
    const newClient = (settings: PoolSettings) => {
      const client = options.makeClient(settings)
      clients.push(client)
      return client
    }

    const replicas: ReadonlyArray<Replica<C>> = replicaNodes.map((node) => ({
      name: node.name,
      client: newClient({ ...pool, connectionString: node.url }),
      breaker: options.makeBreaker(node.name)
    }))

    const probe = (node: Node<C>): Effect.Effect<Kernel.Probe | undefined> =>
      Effect.suspend(() => {
        node.probe ??= newClient({ ...probePool, connectionString: node.url })
        // The writer's WAL end is dated when the probe leaves: a commit
        // acknowledged before then is inside the position it answers.
        const sentAt = Date.now()
        return probeOf(node.probe, options.probeTimeoutMs, node.name).pipe(
          Effect.map((result): Kernel.Probe | undefined => result),
          Effect.catchAll((error) => Effect.as(Effect.sync(() => record(node, undefined, describeRedacted(error))), undefined)),
          Effect.tap((result) => result === undefined ? Effect.void : Effect.sync(() => record(node, result, undefined, sentAt)))
        )
      })
    // The writer's WAL end over time, against which every replica's replay is measured.
    let history: Kernel.WriterHistory | undefined
    // set by `start`: the node the queries go to
    let writerName: () => string | undefined = () => undefined
    const record = (node: Node<C>, result: Kernel.Probe | undefined, error: string | undefined, sentAt = 0) => {
      node.state = {
        name: node.name,
        role: Kernel.roleOf(result),
        replayLsn: result?.replayLsn,
        checkedAt: Date.now(),
        error
      }
      if (result?.walLsn !== undefined && node.name === writerName()) {
        history = Kernel.recordWriter(history, node.name, { at: sentAt, lsn: result.walLsn })
      }
      const labels = Metrics.nodeLabels(options.name, node.name)
      Metrics.nodeUp.unsafeUpdate(result === undefined ? 0 : 1, labels)
      Metrics.nodePrimary.unsafeUpdate(result !== undefined && !result.inRecovery ? 1 : 0, labels)
    }
    const checkEveryMs = Kernel.checkIntervalMs(config, replicaNodes.length)
    const staleMs = 3 * checkEveryMs + options.probeTimeoutMs
    /** how far behind the writer `state`'s node is at `now`, at most; undefined: cannot be told */
    const lagOf = (state: Kernel.NodeState, now: number) =>
      state.role === "replica" ? Kernel.lagOf(history, state.replayLsn, now, staleMs) : undefined

    const noWriter = (operation: string, attempt: number, message: string) =>
      new ConnectionError({ operation, attempt, safety: "before-send", code: NO_WRITER, message, cause: undefined })

    const target: Topology<C>["target"] = (operation, attempt) =>
      plan === undefined
        ? Effect.succeed({ url: options.url, node: writerNodes[0]?.name })
        : Effect.flatMap(
          Effect.forEach(writerNodes, probe, { concurrency: "unbounded" }),
          (probes) => {
            const same = Kernel.sameServer(probes)
            if (same !== undefined) {
              const [a, b] = same.map((i) => writerNodes[i]!.name)
              // Not retryable: every attempt would connect the same way.
              return Effect.fail(
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
              )
            }
            const index = Kernel.choose(attrs, probes)
            if (index === undefined) {
              const seen = writerNodes.map((node) =>
                `${node.name} ${node.state.role}${node.state.error === undefined ? "" : ` (${node.state.error})`}`
              ).join(", ")
              return Effect.fail(
                noWriter(operation, attempt, `no node fit for target_session_attrs=${attrs} (${seen})`)
              )
            }
            return Effect.succeed({ url: plan.url(index), node: writerNodes[index]!.name })
          }
        )

    const verify: Topology<C>["verify"] = (client, node) =>
      !writerMode
        ? Effect.void
        : Effect.flatMap(probeOf(client, options.probeTimeoutMs, node ?? "writer"), (result) =>
          Kernel.accepts(attrs, result)
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

    let search: Deferred.Deferred<void> | undefined
    let run: ((effect: Effect.Effect<void>) => unknown) | undefined
    let findWriter: ((why: string) => Effect.Effect<void>) | undefined

    const discover = (why: string) => {
      if (!writerMode || search !== undefined || run === undefined || findWriter === undefined) return
      const done = Deferred.unsafeMake<void>(FiberId.none)
      search = done
      run(findWriter(why).pipe(
        Effect.ensuring(Effect.suspend(() => {
          search = undefined
          return Deferred.succeed(done, undefined)
        }))
      ))
    }

    const start: Topology<C>["start"] = (writer, onWriter) =>
      Effect.gen(function*() {
        if (!active) return
        writerName = writer
        const runtime = yield* Effect.runtime<never>()
        const fibers = yield* FiberSet.make<void, never>()
        const runFork = Runtime.runFork(runtime)
        run = (effect) => FiberSet.unsafeAdd(fibers, runFork(effect))
        const labels = (result: string) => Metrics.discoveryLabels(options.name, result)

        findWriter = (why) =>
          Effect.gen(function*() {
            const started = Date.now()
            const before = writer()
            yield* Effect.logWarning(`Writer discovery: started after ${why}; writer was ${before ?? "unknown"}`)
            while (true) {
              const found = yield* Effect.either(target("discovery", 1))
              if (found._tag === "Right") {
                const { node, url } = found.right
                if (node === before) {
                  Metrics.writerDiscoveries.unsafeUpdate(1, labels("unchanged"))
                  return yield* Effect.logInfo(
                    `Writer discovery: ${node} is still the writer (${Date.now() - started} ms)`
                  )
                }
                const client = options.makeClient({ ...pool, connectionString: url })
                const connected = yield* Effect.tryPromise({
                  try: () => client.$connect(),
                  catch: (error) => classify(error, { operation: "discovery", attempt: 1 })
                }).pipe(
                  Effect.zipRight(verify(client, node)),
                  Effect.either
                )
                if (connected._tag === "Right") {
                  const old = yield* onWriter(client, node!)
                  Metrics.writerDiscoveries.unsafeUpdate(1, labels("changed"))
                  yield* Effect.logWarning(
                    `Writer discovery: ${node} is the writer now (was ${before ?? "unknown"}), found in ${
                      Date.now() - started
                    } ms`
                  )
                  // Queries still running on the old writer finish or fail there first.
                  if (old !== undefined) {
                    yield* Effect.forkDaemon(
                      Effect.ignore(
                        Effect.timeout(Effect.tryPromise(() => old.$disconnect()), options.shutdownTimeoutMs)
                      )
                    )
                  }
                  return
                }
                yield* Effect.ignore(Effect.timeout(Effect.tryPromise(() => client.$disconnect()), options.shutdownTimeoutMs))
              }
              if (Date.now() - started >= options.discoveryTimeoutMs) {
                Metrics.writerDiscoveries.unsafeUpdate(1, labels("failed"))
                return yield* Effect.logError(
                  `Writer discovery: no writer found in ${Date.now() - started} ms (${
                    found._tag === "Left" ? describeRedacted(found.left) : "the writer found did not verify"
                  }); the next failure searches again`
                )
              }
              yield* Effect.sleep(Duration.millis(DISCOVERY_POLL_MS))
            }
          })

        const checkAll = Effect.gen(function*() {
          const all = [...nodes.values()]
          yield* Effect.forEach(all, probe, { concurrency: "unbounded", discard: true })
          publishLag(Date.now())
          const current = writer()
          if (!writerMode || current === undefined || search !== undefined) return
          const state = nodes.get(current)?.state
          if (state !== undefined && state.role !== "primary") {
            discover(`the check found the writer ${current} ${state.role}`)
          }
        })
        yield* Effect.forkScoped(
          Effect.repeat(checkAll, Schedule.spaced(Duration.millis(checkEveryMs)))
        )
      })

    const awaitWriter: Topology<C>["awaitWriter"] = (deadlineMs, now, operation, attempt) => {
      const current = search
      if (current === undefined) return Effect.void
      const waitMs = Math.max(0, deadlineMs - now)
      return Deferred.await(current).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(waitMs),
          onTimeout: () =>
            noWriter(operation, attempt, `no writer yet: the search for it outlasted the ${waitMs} ms left of the request`)
        })
      )
    }

    let cursor = 0
    const pick: Topology<C>["pick"] = (now) => {
      const wallNow = Date.now()
      const candidates = replicas.map((replica): Kernel.Candidate => {
        const state = nodes.get(replica.name)!.state
        return { state, admits: replica.breaker.state(now) !== "open", lagMs: lagOf(state, wallNow) }
      })
      const picked = Kernel.pickReplica(candidates, wallNow, { maxLagMs: config.replicaMaxLagMs, staleMs }, cursor)
      if ("index" in picked) {
        cursor = picked.index + 1
        return replicas[picked.index]!
      }
      return picked.reason
    }

    const replicaNames = new Set(replicas.map((replica) => replica.name))
    /**
     * db_node_replay_lag_seconds after each check: 0 on a primary, the lag
     * on a replica, +Inf on a replica whose lag cannot be told and on an
     * unreachable configured replica. Never 0 for "unknown", which is what
     * the replica alone would say when cut off; +Inf (not NaN, which compares
     * false with everything) lets a `> threshold` alert fire on it.
     */
    const publishLag = (now: number) => {
      for (const node of nodes.values()) {
        const { role } = node.state
        const value = role === "primary"
          ? 0
          : role === "replica" || (role === "unreachable" && replicaNames.has(node.name))
          ? (lagOf(node.state, now) ?? Infinity) / 1000
          : undefined
        if (value !== undefined) Metrics.nodeReplayLag.unsafeUpdate(value, Metrics.nodeLabels(options.name, node.name))
      }
    }

    const breakers = new Map(replicas.map((replica) => [replica.name, replica.breaker]))
    const nodesNow: Topology<C>["nodes"] = (now, writer) => {
      const wallNow = Date.now()
      return [...nodes.values()].map((node): NodeHealth => {
        const { checkedAt, error, role } = node.state
        const breaker = breakers.get(node.name)
        const lagMs = lagOf(node.state, wallNow)
        return {
          name: node.name,
          role,
          serves: node.name === writer ? "writer" : replicaNames.has(node.name) ? "replica" : "none",
          ...(lagMs === undefined ? {} : { lagMs }),
          ...(role === "replica" ? { lag: Kernel.lagState(lagMs, config.replicaMaxLagMs) } : {}),
          ...(checkedAt === 0 ? {} : { checkedAgoMs: Math.max(0, wallNow - checkedAt) }),
          ...(breaker === undefined ? {} : { circuit: breaker.state(now) }),
          ...(error === undefined ? {} : { error })
        }
      })
    }

    return {
      active,
      writerMode,
      replicas,
      target,
      verify,
      start,
      discovering: () => search !== undefined,
      discover,
      awaitWriter,
      pick,
      nodes: nodesNow
    }
  })

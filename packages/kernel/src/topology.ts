/**
 * The database as several nodes: which one takes the writes (libpq's
 * `target_session_attrs` over a multi-host connection string) and which
 * replica may serve an opted-in read. Synchronous and free of any Effect
 * import; the layer probes the nodes and feeds the answers in.
 *
 * @since 0.1.0
 */
import { parseMultiHost, type TargetSessionAttrs } from "./connectionString.js"

/**
 * What a probe of one node found.
 *
 * @since 0.1.0
 */
export interface Probe {
  /** `pg_is_in_recovery()`: a standby, or a primary being demoted */
  readonly inRecovery: boolean
  /** `transaction_read_only` of a new session (`default_transaction_read_only`, or recovery) */
  readonly readOnly: boolean
  /**
   * on a node out of recovery: where its WAL ends now, every record it has
   * inserted included (`walEnd` of `pg_current_wal_insert_lsn()`); undefined in recovery
   */
  readonly walLsn: bigint | undefined
  /** on a node in recovery: the end of the last WAL record it replayed (`pg_last_wal_replay_lsn()`); undefined when it cannot tell */
  readonly replayLsn: bigint | undefined
  /**
   * The server that answered, as it sees itself (its address, port and start
   * time): two nodes of one connection string that answer as one server
   * were not connected where their strings say.
   */
  readonly server?: string | undefined
}

/**
 * The first two nodes whose probes answered as the same server, by index, or
 * undefined. A client factory that ignores `pool.connectionString` (spreading
 * its own URL after `pool`) connects every node to one server, and failover
 * then cannot reach the new writer: this is how that shows.
 *
 * @since 0.1.0
 */
export const sameServer = (probes: ReadonlyArray<Probe | undefined>): readonly [number, number] | undefined => {
  const seen = new Map<string, number>()
  for (let i = 0; i < probes.length; i++) {
    const server = probes[i]?.server
    if (server === undefined) continue
    const first = seen.get(server)
    if (first !== undefined) return [first, i]
    seen.set(server, i)
  }
  return undefined
}

/**
 * What a node is to the layer: the writer (`primary`), a node in recovery
 * (`replica`), one whose probe failed (`unreachable`), or not yet probed.
 *
 * @since 0.1.0
 */
export type Role = "primary" | "replica" | "unreachable" | "unknown"

/**
 * One node as the layer last saw it.
 *
 * @since 0.1.0
 */
export interface NodeState {
  /** `host:port`: no credentials */
  readonly name: string
  readonly role: Role
  /** the last probe's `Probe.replayLsn`: what the node has replayed at least (a position only grows) */
  readonly replayLsn: bigint | undefined
  /** when it was last probed (the layer's clock), 0 before the first probe */
  readonly checkedAt: number
  /** the last probe's failure, credential-free */
  readonly error: string | undefined
}

/**
 * The role a probe says a node has; undefined (no answer) is `unreachable`.
 *
 * @since 0.1.0
 */
export const roleOf = (probe: Probe | undefined): Role =>
  probe === undefined ? "unreachable" : probe.inRecovery ? "replica" : "primary"

/**
 * The SQLSTATEs that say "this node is not (or no longer) the writer": a
 * refused write on a standby or a demoted primary (25006), and a server that
 * shut down, crashed or is starting or stopping (57P01, 57P02, 57P03). Each
 * one is a reason to look for the writer again.
 */
const wrongNode: ReadonlySet<string> = new Set(["25006", "57P01", "57P02", "57P03"])

/**
 * Whether `code` says the node is not (or no longer) the writer (see above):
 * a reason to look for the writer again.
 *
 * @since 0.1.0
 */
export const isWrongNode = (code: string | undefined): boolean => code !== undefined && wrongNode.has(code)

/**
 * Whether a node with `probe` is acceptable for `attrs`, libpq's meaning.
 *
 * @since 0.1.0
 */
export const accepts = (attrs: TargetSessionAttrs, probe: Probe): boolean => {
  switch (attrs) {
    case "any":
    case "prefer-standby":
      return true
    case "read-write":
      return !probe.inRecovery && !probe.readOnly
    case "read-only":
      return probe.inRecovery || probe.readOnly
    case "primary":
      return !probe.inRecovery
    case "standby":
      return probe.inRecovery
  }
}

/**
 * The node to connect to, given each host's probe in list order (undefined:
 * unreachable): the first acceptable one, as libpq does; `prefer-standby`
 * takes a standby first and any node otherwise.
 *
 * @since 0.1.0
 */
export const choose = (attrs: TargetSessionAttrs, probes: ReadonlyArray<Probe | undefined>): number | undefined => {
  if (attrs === "prefer-standby") {
    const standby = probes.findIndex((probe) => probe !== undefined && probe.inRecovery)
    if (standby !== -1) return standby
  }
  const index = probes.findIndex((probe) => probe !== undefined && accepts(attrs, probe))
  return index === -1 ? undefined : index
}

/**
 * Whether the writer must be checked, not just reached: `read-write` and `primary`.
 *
 * @since 0.1.0
 */
export const needsWriter = (attrs: TargetSessionAttrs): boolean => attrs === "read-write" || attrs === "primary"

/**
 * The connection string's nodes, as `plan` reads them (it gives none for a
 * plain single-host string, which is used as it is).
 *
 * @since 0.1.0
 */
export interface Plan {
  readonly hosts: ReadonlyArray<string>
  readonly targetSessionAttrs: TargetSessionAttrs
  /** the single-host connection string of `hosts[index]`: holds the password */
  readonly url: (index: number) => string
}

const hasHostList = (url: string) => {
  const authority = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?([^/?#]*)/.exec(url.trim())
  return authority !== null && authority[1]!.includes(",")
}

/**
 * A plan for `url` when it lists several hosts or asks for
 * `target_session_attrs`; a plain string gets none, so that a single-host
 * setup connects exactly as it always did. Throws `ConnectionStringError`
 * (whose message never holds the string) for a malformed one.
 *
 * @since 0.1.0
 */
export const plan = (url: string): Plan | undefined => {
  if (!hasHostList(url) && !/[?&]target_session_attrs=/.test(url)) return undefined
  const parsed = parseMultiHost(url)
  return {
    hosts: parsed.hosts.map(nodeName),
    targetSessionAttrs: parsed.targetSessionAttrs,
    url: parsed.forHost
  }
}

const nodeName = ({ host, port }: { readonly host: string; readonly port: number }) =>
  `${host.includes(":") ? `[${host}]` : host}:${port}`

/**
 * The `host:port` of a single-host connection string, never its credentials.
 *
 * @since 0.1.0
 */
export const nameOf = (url: string): string => {
  const parsed = parseMultiHost(url)
  if (parsed.hosts.length !== 1) throw new RangeError(`a replica URL names ${parsed.hosts.length} hosts, not one`)
  return nodeName(parsed.hosts[0]!)
}

/**
 * `DATABASE_REPLICA_URLS`: connection strings separated by whitespace or by
 * commas before the next `postgres://` (a comma inside a string is its host
 * list).
 *
 * @since 0.1.0
 */
export const splitUrls = (text: string): ReadonlyArray<string> =>
  text.split(/\s+|,(?=\s*postgres(?:ql)?:\/\/)/).map((part) => part.trim()).filter((part) => part !== "")

/**
 * Why an opted-in read went where it went (`db_replica_routing_total`'s `reason`).
 *
 * @since 0.1.0
 */
export type RoutingReason = "healthy" | "no_replica" | "lag" | "unavailable" | "read_your_writes" | "fallback"

/**
 * A replica as routing sees it.
 *
 * @since 0.1.0
 */
export interface Candidate {
  readonly state: NodeState
  /** whether its circuit breaker lets an attempt through now */
  readonly admits: boolean
  /** how far behind the writer it is now (`lagOf`); undefined when that cannot be told */
  readonly lagMs: number | undefined
}

/**
 * The limits of replica routing: the lag limit (`DB_REPLICA_MAX_LAG_MS`) and
 * how old a replica's last probe may be (the layer derives it from the check
 * interval).
 *
 * @since 0.1.0
 */
export interface RoutingConfig {
  /** a replica further behind gets no reads */
  readonly maxLagMs: number
  /** a probe older than this says nothing about the replica any more */
  readonly staleMs: number
}

/**
 * Picks the replica for the next opted-in read, round robin from `cursor`
 * over those that are replicas now, were probed recently, are within the lag
 * limit and whose breaker admits; or says why none is. A replica whose lag
 * cannot be told counts as too far behind.
 *
 * @since 0.1.0
 */
export const pickReplica = (
  candidates: ReadonlyArray<Candidate>,
  now: number,
  config: RoutingConfig,
  cursor: number
): { readonly index: number } | { readonly reason: Exclude<RoutingReason, "healthy" | "read_your_writes" | "fallback"> } => {
  if (candidates.length === 0) return { reason: "no_replica" }
  let lagging = false
  for (let i = 0; i < candidates.length; i++) {
    const index = (cursor + i) % candidates.length
    const { admits, lagMs, state } = candidates[index]!
    if (state.role !== "replica" || !admits || now - state.checkedAt > config.staleMs) continue
    if (lagState(lagMs, config.maxLagMs) !== "within") {
      lagging = true
      continue
    }
    return { index }
  }
  return { reason: lagging ? "lag" : "unavailable" }
}

// ------------------------------------------------------------ replica lag
//
// Lag is measured against the writer, never on the replica alone: a replica
// cut off from its primary (or whose link is blackholed, while
// pg_stat_wal_receiver still says `streaming`) has replayed all it received,
// so "received = replayed", or `now() - pg_last_xact_replay_timestamp()` on
// an idle writer, says nothing about what it is missing.
//
// Each node check reads the writer's WAL end and remembers when it saw it
// (the time the probe was sent: a commit acknowledged before then is inside
// that position). A replica that has replayed at least the position the
// writer had at time T holds every commit acknowledged before T, so its lag
// is at most now - T, with T the newest such sample. That bound is what
// routing compares with DB_REPLICA_MAX_LAG_MS at the moment of each read: it
// grows between checks even while nothing is known, so a replica that stops
// replaying (cut, stalled, paused) leaves the rotation within the limit, and
// a replica that cannot be judged (no recent writer position, a replay
// position it cannot give, behind every sample kept) is too far behind.
//
// WAL positions rather than a heartbeat row: they need no table, no write
// permission and no write traffic of the layer's own (a fleet of instances
// would each write one), work on read-only roles, and compare nodes of one
// cluster exactly whatever their clocks say. Positions are only comparable
// within one writer's history, so a new writer (a failover) or a position
// that went back (a rebuilt node) starts the history over.

/**
 * A `pg_lsn` ("16/B374D848") as a byte position; undefined for anything else.
 *
 * @since 0.1.0
 */
export const parseLsn = (text: string | null | undefined): bigint | undefined => {
  const match = typeof text === "string" ? /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text) : null
  return match === null ? undefined : (BigInt(`0x${match[1]}`) << 32n) + BigInt(`0x${match[2]}`)
}

// MAXALIGN'd XLogPageHeaderData and XLogLongPageHeaderData on 64-bit builds.
const SHORT_PAGE_HEADER = 24n
const LONG_PAGE_HEADER = 40n

/**
 * The end of the last WAL record inserted, from `pg_current_wal_insert_lsn()`.
 * The insert position of an empty page points past the page's header, while
 * a replica reports the end of the record it replayed, the page boundary
 * itself: left as it is, a record that ends on a boundary would keep an idle
 * writer a header's length ahead of a replica that has everything. The
 * insert position (not `pg_current_wal_lsn()`, the write position) is used so
 * that a commit acknowledged before its WAL was written
 * (`synchronous_commit = off`) is still inside it.
 *
 * @since 0.1.0
 */
export const walEnd = (insertLsn: bigint, blockSize: number, segmentSize: number): bigint => {
  const inSegment = insertLsn % BigInt(segmentSize)
  if (inSegment === LONG_PAGE_HEADER) return insertLsn - LONG_PAGE_HEADER
  if (inSegment >= BigInt(blockSize) && insertLsn % BigInt(blockSize) === SHORT_PAGE_HEADER) {
    return insertLsn - SHORT_PAGE_HEADER
  }
  return insertLsn
}

/**
 * The writer's WAL end at a moment (the layer's clock).
 *
 * @since 0.1.0
 */
export interface WriterSample {
  readonly at: number
  readonly lsn: bigint
}

/**
 * One writer's samples, oldest first, both `at` and `lsn` strictly increasing.
 *
 * @since 0.1.0
 */
export interface WriterHistory {
  readonly node: string
  readonly samples: ReadonlyArray<WriterSample>
}

/**
 * How many samples a history keeps: a replica behind all of them has a lag that cannot be told.
 *
 * @since 0.1.0
 */
export const HISTORY_LIMIT = 1024

/**
 * `history` with `sample` of `node` added. A sample of another node, or one
 * whose position went back, starts a new history; an older sample than the
 * newest (probes that overlapped) adds nothing; the same position seen again
 * moves the newest sample's time forward, so an idle writer keeps one.
 *
 * @since 0.1.0
 */
export const recordWriter = (
  history: WriterHistory | undefined,
  node: string,
  sample: WriterSample,
  limit: number = HISTORY_LIMIT
): WriterHistory => {
  const last = history?.samples[history.samples.length - 1]
  if (history === undefined || last === undefined || history.node !== node) return { node, samples: [sample] }
  if (sample.at <= last.at) return history
  if (sample.lsn < last.lsn) return { node, samples: [sample] }
  if (sample.lsn === last.lsn) return { node, samples: [...history.samples.slice(0, -1), sample] }
  const samples = [...history.samples, sample]
  return { node, samples: samples.length > limit ? samples.slice(samples.length - limit) : samples }
}

/**
 * The time of the newest sample at or before `replayLsn`: everything acknowledged before it is replayed.
 *
 * @since 0.1.0
 */
export const replayedAt = (history: WriterHistory, replayLsn: bigint): number | undefined => {
  const { samples } = history
  let lo = 0
  let hi = samples.length - 1
  let found: number | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    if (samples[mid]!.lsn <= replayLsn) {
      found = samples[mid]!.at
      lo = mid + 1
    } else {
      hi = mid - 1
    }
  }
  return found
}

/**
 * How far behind the writer a replica that has replayed `replayLsn` is at
 * `now`, at most; undefined when that cannot be told: no writer history, no
 * writer sample within `staleMs` (the writer went unreachable), no replay
 * position, or a replica behind every sample kept.
 *
 * @since 0.1.0
 */
export const lagOf = (
  history: WriterHistory | undefined,
  replayLsn: bigint | undefined,
  now: number,
  staleMs: number
): number | undefined => {
  if (history === undefined || replayLsn === undefined) return undefined
  const newest = history.samples[history.samples.length - 1]
  if (newest === undefined || now - newest.at > staleMs) return undefined
  const at = replayedAt(history, replayLsn)
  return at === undefined ? undefined : Math.max(0, now - at)
}

/**
 * Whether a replica `lagMs` behind may serve reads: `unknown` counts as too far behind.
 *
 * @since 0.1.0
 */
export type LagState = "within" | "over" | "unknown"

/**
 * The `LagState` of a replica `lagMs` behind (undefined: cannot be told)
 * under a limit of `maxLagMs`.
 *
 * @since 0.1.0
 */
export const lagState = (lagMs: number | undefined, maxLagMs: number): LagState =>
  lagMs === undefined ? "unknown" : lagMs <= maxLagMs ? "within" : "over"

/**
 * The shortest node check interval the lag limit may ask for.
 *
 * @since 0.1.0
 */
export const MIN_CHECK_INTERVAL_MS = 50

/**
 * How often the nodes are checked. With replicas, at least four times per
 * lag limit: a replica's lag can only be known as of the last check, so
 * between two checks it grows by the interval, and a healthy replica, whose
 * replay trails the writer's newest sample by a moment under write load, is
 * matched to the sample of the check before: up to two intervals behind
 * before the next check catches it up.
 *
 * @since 0.1.0
 */
export const checkIntervalMs = (config: { readonly nodeCheckIntervalMs: number; readonly replicaMaxLagMs: number }, replicas: number): number =>
  replicas === 0
    ? config.nodeCheckIntervalMs
    : Math.max(MIN_CHECK_INTERVAL_MS, Math.min(config.nodeCheckIntervalMs, Math.floor(config.replicaMaxLagMs / 4)))

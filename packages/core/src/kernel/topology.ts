/**
 * The database as several nodes: which one takes the writes (libpq's
 * `target_session_attrs` over a multi-host connection string) and which
 * replica may serve an opted-in read. Synchronous and free of any Effect
 * import; the layer probes the nodes and feeds the answers in.
 */
import { parseMultiHost, type TargetSessionAttrs } from "./connectionString.js"

/** What a probe of one node found. */
export interface Probe {
  /** `pg_is_in_recovery()`: a standby, or a primary being demoted */
  readonly inRecovery: boolean
  /** `transaction_read_only` of a new session (`default_transaction_read_only`, or recovery) */
  readonly readOnly: boolean
  /** replay lag in ms on a node in recovery; 0 on a primary; undefined when the node cannot tell */
  readonly lagMs: number | undefined
}

export type Role = "primary" | "replica" | "unreachable" | "unknown"

/** One node as the layer last saw it. */
export interface NodeState {
  /** `host:port`: no credentials */
  readonly name: string
  readonly role: Role
  readonly lagMs: number | undefined
  /** when it was last probed (the layer's clock), 0 before the first probe */
  readonly checkedAt: number
  /** the last probe's failure, credential-free */
  readonly error: string | undefined
}

export const roleOf = (probe: Probe | undefined): Role =>
  probe === undefined ? "unreachable" : probe.inRecovery ? "replica" : "primary"

/**
 * The SQLSTATEs that say "this node is not (or no longer) the writer": a
 * refused write on a standby or a demoted primary (25006), and a server that
 * shut down, crashed or is starting or stopping (57P01, 57P02, 57P03). Each
 * one is a reason to look for the writer again.
 */
const wrongNode: ReadonlySet<string> = new Set(["25006", "57P01", "57P02", "57P03"])
export const isWrongNode = (code: string | undefined): boolean => code !== undefined && wrongNode.has(code)

/** Whether a node with `probe` is acceptable for `attrs`, libpq's meaning. */
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
 */
export const choose = (attrs: TargetSessionAttrs, probes: ReadonlyArray<Probe | undefined>): number | undefined => {
  if (attrs === "prefer-standby") {
    const standby = probes.findIndex((probe) => probe !== undefined && probe.inRecovery)
    if (standby !== -1) return standby
  }
  const index = probes.findIndex((probe) => probe !== undefined && accepts(attrs, probe))
  return index === -1 ? undefined : index
}

/** Whether the writer must be checked, not just reached: `read-write` and `primary`. */
export const needsWriter = (attrs: TargetSessionAttrs): boolean => attrs === "read-write" || attrs === "primary"

/** The connection string's nodes, or undefined for a plain single-host string (which is used as it is). */
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

/** The `host:port` of a single-host connection string, never its credentials. */
export const nameOf = (url: string): string => {
  const parsed = parseMultiHost(url)
  if (parsed.hosts.length !== 1) throw new RangeError(`a replica URL names ${parsed.hosts.length} hosts, not one`)
  return nodeName(parsed.hosts[0]!)
}

/**
 * `DATABASE_REPLICA_URLS`: connection strings separated by whitespace or by
 * commas before the next `postgres://` (a comma inside a string is its host
 * list).
 */
export const splitUrls = (text: string): ReadonlyArray<string> =>
  text.split(/\s+|,(?=\s*postgres(?:ql)?:\/\/)/).map((part) => part.trim()).filter((part) => part !== "")

/** Why an opted-in read went where it went (`db_replica_routing_total`'s `reason`). */
export type RoutingReason = "healthy" | "no_replica" | "lag" | "unavailable" | "read_your_writes" | "fallback"

/** A replica as routing sees it. */
export interface Candidate {
  readonly state: NodeState
  /** whether its circuit breaker lets an attempt through now */
  readonly admits: boolean
}

export interface RoutingConfig {
  /** a replica further behind gets no reads */
  readonly maxLagMs: number
  /** a probe older than this says nothing about the replica any more */
  readonly staleMs: number
}

/**
 * Picks the replica for the next opted-in read, round robin from `cursor`
 * over those that are replicas now, were probed recently, are within the lag
 * limit and whose breaker admits; or says why none is.
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
    const { admits, state } = candidates[index]!
    if (state.role !== "replica" || !admits || now - state.checkedAt > config.staleMs) continue
    if (state.lagMs === undefined || state.lagMs > config.maxLagMs) {
      lagging = true
      continue
    }
    return { index }
  }
  return { reason: lagging ? "lag" : "unavailable" }
}

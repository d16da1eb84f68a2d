/**
 * The metrics of the resilience layer, as module-level constants. Labels are
 * added at the call site; the query path uses cached label arrays with
 * `record` so that recording costs no allocation per query.
 */
import * as Metric from "effect/Metric"

/**
 * A series' attributes (Effect 4's metric labels) as key/value pairs.
 *
 * @since 1.0.0
 */
export type Labels = ReadonlyArray<[string, string]>

/**
 * Seconds the last warm-up took, from the first connect to a successful probe.
 *
 * @since 0.1.0
 */
export const warmupDuration = Metric.gauge("db_warmup_duration_seconds", {
  description: "Duration of the last database warm-up in seconds"
})

/**
 * 1 once warm-up finished and the database is in service, 0 before and after.
 *
 * @since 0.1.0
 */
export const ready = Metric.gauge("db_ready", {
  description: "1 when the database layer is warmed up and serving, else 0"
})

/**
 * Duration of whole queries, retries included, by `operation`.
 *
 * @since 0.1.0
 */
export const queryDuration = Metric.histogram("db_query_duration_seconds", {
  boundaries: Metric.boundariesFromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  description: "Duration of database operations including retries, in seconds"
})

/**
 * Attempts by `operation`, `attempt` (1, 2, 3…) and `outcome` (success, or the error tag).
 *
 * @since 0.1.0
 */
export const queryAttempts = Metric.counter("db_query_attempts_total", {
  description: "Database attempts by operation, attempt number and outcome",
  incremental: true
})

/**
 * Retries by `operation` and the `error` tag that caused them.
 *
 * @since 0.1.0
 */
export const queryRetries = Metric.counter("db_query_retries_total", {
  description: "Database retries by operation and the error that caused them",
  incremental: true
})

/**
 * Health checks by `result` (pass, or the failure reason).
 *
 * @since 0.1.0
 */
export const healthChecks = Metric.counter("db_health_checks_total", {
  description: "Health checks by result",
  incremental: true
})

/**
 * `db_pool_connections{database}`: connections open in the pool, sampled
 * from `LayerOptions.poolStats` once a second.
 *
 * @since 0.1.0
 */
export const poolTotal = Metric.gauge("db_pool_connections", {
  description: "Connections open in the pool (idle and in use)"
})
/**
 * `db_pool_idle_connections{database}`: idle connections in the pool.
 *
 * @since 0.1.0
 */
export const poolIdle = Metric.gauge("db_pool_idle_connections", {
  description: "Idle connections in the pool"
})
/**
 * `db_pool_waiting_clients{database}`: queries waiting for a pool
 * connection; above 0 for long, the pool is too small or its connections are
 * stuck.
 *
 * @since 0.1.0
 */
export const poolWaiting = Metric.gauge("db_pool_waiting_clients", {
  description: "Queries waiting for a pool connection"
})

/**
 * The `database` label of a `Database`'s gauges (`db_ready`,
 * `db_warmup_duration_seconds`, `db_circuit_state`, `db_retry_budget_tokens`,
 * the pool gauges), so that two databases of one process keep separate series.
 *
 * @since 0.1.0
 */
export const databaseLabels = (database: string): Labels => {
  let labels = byDatabase.get(database)
  if (labels === undefined) {
    labels = [["database", database]]
    byDatabase.set(database, labels)
  }
  return labels
}
// Database names are code-defined, so the cache is bounded by the program.
const byDatabase = new Map<string, Labels>()


/**
 * Tokens in the shared retry budget.
 *
 * @since 0.1.0
 */
export const retryBudgetTokens = Metric.gauge("db_retry_budget_tokens", {
  description: "Tokens in the retry budget; retries stop at half of the maximum"
})

/**
 * Retries the schedule allowed but the retry budget refused, by `operation`.
 *
 * @since 0.1.0
 */
export const retriesRefused = Metric.counter("db_retry_budget_refused_total", {
  description: "Retries refused because the retry budget was exhausted",
  incremental: true
})

/**
 * 0 closed, 1 open, 2 half-open.
 *
 * @since 0.1.0
 */
export const circuitState = Metric.gauge("db_circuit_state", {
  description: "Circuit breaker state: 0 closed, 1 open, 2 half-open"
})

/**
 * Queries failed fast by the open circuit, by `operation`.
 *
 * @since 0.1.0
 */
export const circuitRejections = Metric.counter("db_circuit_rejections_total", {
  description: "Attempts not sent because the circuit breaker was open",
  incremental: true
})

/**
 * Statements the server cancelled, by `operation` and `code`: 57014 (the
 * server-side statement limit, or a cancel request) and 55P03 (lock_timeout).
 * Each one is a statement that did not go on running after its attempt failed.
 *
 * @since 0.1.0
 */
export const statementCancellations = Metric.counter("db_statement_cancellations_total", {
  description: "Statements cancelled by the server (57014 statement timeout, 55P03 lock timeout), by operation and code",
  incremental: true
})

/**
 * Transactions that failed ambiguously once their function had returned
 * (the connection lost during COMMIT), by `operation` and by what
 * `txid_status` said: `committed` (the attempt succeeded), `aborted` (run
 * again like a conflict), `unknown` (still the ambiguous error); `no_writes`
 * when the transaction had no transaction id, so its outcome did not matter.
 *
 * @since 0.1.0
 */
export const commitVerifications = Metric.counter("db_commit_verifications_total", {
  description: "Commit outcomes verified with txid_status after a connection failure during COMMIT, by outcome",
  incremental: true
})

/**
 * Where opted-in reads (`{ replica: true }`) went, by `database`, `target`
 * (`replica` or `primary`) and `reason`: `healthy` for a replica; for the
 * primary `no_replica`, `lag` (every replica past DB_REPLICA_MAX_LAG_MS behind
 * the writer, or of a lag that cannot be told),
 * `unavailable` (down, in no recovery, breaker open, not probed lately),
 * `read_your_writes` (the fiber wrote before) or `fallback` (the replica's
 * attempt failed).
 *
 * @since 0.1.0
 */
export const replicaRouting = Metric.counter("db_replica_routing_total", {
  description: "Opted-in reads by where they went (replica or primary) and why",
  incremental: true
})

/**
 * Attempts per node, by `database`, `node` (host:port) and `result` (success, failure).
 *
 * @since 0.1.0
 */
export const nodeQueries = Metric.counter("db_node_queries_total", {
  description: "Query attempts per database node, by result",
  incremental: true
})

/**
 * 1 while the node's last probe answered.
 *
 * @since 0.1.0
 */
export const nodeUp = Metric.gauge("db_node_up", { description: "1 when the node's last probe answered, else 0" })

/**
 * 1 while the node is not in recovery (a primary), 0 otherwise.
 *
 * @since 0.1.0
 */
export const nodePrimary = Metric.gauge("db_node_primary", {
  description: "1 when the node's last probe found it out of recovery (a primary), else 0"
})

/**
 * How far behind the writer a node in recovery is, at most, in seconds, as
 * of the last node check (measured against the writer's WAL end, not on the
 * replica alone); 0 on a primary; `+Inf` when it cannot be told (no recent
 * writer position, no replay position, or a configured replica unreachable),
 * never 0 for that.
 *
 * @since 0.1.0
 */
export const nodeReplayLag = Metric.gauge("db_node_replay_lag_seconds", {
  description: "How far behind the writer the node is in seconds, 0 for a primary, +Inf when it cannot be told"
})

/**
 * Writer discoveries by `database` and `result`: `changed` (a new writer), `unchanged`, `failed` (none found in time).
 *
 * @since 0.1.0
 */
export const writerDiscoveries = Metric.counter("db_writer_discoveries_total", {
  description: "Searches for the writable node after a failure, by result",
  incremental: true
})

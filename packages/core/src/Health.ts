/**
 * `health`: an Effect that requires `Database`, so it cannot run, let alone
 * pass, before warm-up has provided the service. It fails while the circuit
 * breaker refuses queries, and otherwise probes the same client the queries
 * use with `SELECT 1` under a short timeout. A `Database.Tag` has the same
 * check as its `health`.
 */
import { Effect } from "effect"
import { Database } from "./Database.js"
import type { HealthError, NodeHealth } from "./Errors.js"
import { check } from "./internal/health.js"

export interface HealthReport {
  readonly status: "pass"
  /** round trip of the `SELECT 1` probe */
  readonly latencyMs: number
  readonly warmupMs: number
  readonly warmupAttempts: number
  /** the nodes, for a database with several (a multi-host URL, replicas) */
  readonly nodes?: ReadonlyArray<NodeHealth> | undefined
}

export const health: Effect.Effect<HealthReport, HealthError, Database> = Effect.flatMap(Database, check)

/**
 * `health`: an Effect that requires `Database`, so it cannot run, let alone
 * pass, before warm-up has provided the service. It fails while the circuit
 * breaker refuses queries, and otherwise probes the same client the queries
 * use with `SELECT 1` under a short timeout. A `Database.Tag` has the same
 * check as its `health`.
 */
import { Effect } from "effect"
import { Database } from "./Database.js"
import type { HealthError } from "./Errors.js"
import type { HealthReport } from "./DatabaseService.js"
import { check } from "./internal/health.js"

export type { HealthReport } from "./DatabaseService.js"

export const health: Effect.Effect<HealthReport, HealthError, Database> = Effect.flatMap(Database, check)

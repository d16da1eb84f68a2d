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

/**
 * The health check of the default `Database`: it requires the service, so it
 * cannot run before warm-up has provided it. It fails while the breaker
 * refuses queries (taking the breaker's half-open slot itself when it is
 * due), when its `SELECT 1` on the queries' own client fails, and while the
 * queries themselves fail (`degraded`); it passes again once they would
 * succeed, with no other traffic.
 *
 * @example
 * ```ts
 * const report = yield* health // HealthReport, or HealthError with a reason
 * ```
 *
 * @since 0.1.0
 */
export const health: Effect.Effect<HealthReport, HealthError, Database> = Effect.flatMap(Database, check)

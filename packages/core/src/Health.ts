/**
 * `health`: an Effect that requires `Database`, so it cannot run, let alone
 * pass, before warm-up has provided the service. It fails while the circuit
 * breaker refuses queries, and otherwise probes the same client the queries
 * use with `SELECT 1` under a short timeout. A `Database.Tag` has the same
 * check as its `health`.
 */
import * as Effect from "effect/Effect"
import { Database } from "./Database.js"
import type { HealthError, HealthFailureReason } from "./Errors.js"
import type { HealthFailureDetails, HealthReport } from "./DatabaseService.js"
import { check, failure } from "./internal/health.js"

export type { HealthFailureDetails, HealthReport } from "./DatabaseService.js"

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

/**
 * A failed health check as `health` reports one: counted in
 * `db_health_checks_total{result}`, logged at Warning, failing with a
 * `HealthError` of `reason`. For an app that answers health itself before a
 * `Database` exists (during its warm-up, while shutting down), so that those
 * answers are counted and logged like the others.
 *
 * @example
 * ```ts
 * const beforeWarmup = healthFailure("warming", `database warm-up in progress for ${elapsedMs} ms`)
 * ```
 *
 * @since 0.2.0
 */
export const healthFailure: (
  reason: HealthFailureReason,
  message: string,
  details?: HealthFailureDetails
) => Effect.Effect<never, HealthError> = failure

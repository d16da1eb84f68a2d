/**
 * `health`: an Effect that requires `Database`, so it cannot run, let alone
 * pass, before warm-up has provided the service. It probes the same client the
 * queries use with `SELECT 1` under a short timeout.
 */
import { Effect } from "effect"
import { Database } from "./Database.js"
import { HealthError, type HealthFailureReason } from "./Errors.js"
import * as Metrics from "./Metrics.js"

export interface HealthReport {
  readonly status: "pass"
  /** round trip of the `SELECT 1` probe */
  readonly latencyMs: number
  readonly warmupMs: number
  readonly warmupAttempts: number
}

const count = (result: "pass" | HealthFailureReason) =>
  Metrics.healthChecks.unsafeUpdate(1, Metrics.resultLabels(result))

export const health: Effect.Effect<HealthReport, HealthError, Database> = Effect.gen(function*() {
  const db = yield* Database
  const fail = (reason: HealthFailureReason, message: string, cause?: HealthError["cause"]) => {
    count(reason)
    return Effect.zipRight(
      Effect.logWarning(`Health check failed: ${reason}: ${message}`),
      Effect.fail(
        new HealthError({ reason, message, latencyMs: undefined, warmupMs: db.warmup.durationMs, cause })
      )
    )
  }
  if ((yield* db.state) === "shutting_down") {
    return yield* fail("shutting_down", "the service is shutting down")
  }
  // While the breaker is open, queries fail fast: the service is not ready
  // even if a probe would happen to pass. Half-open lets the probe decide.
  const circuit = yield* db.circuit
  if (circuit.state === "open") {
    count("circuit_open")
    return yield* Effect.zipRight(
      Effect.logWarning(`Health check failed: circuit_open: next probe in ${circuit.retryAfterMs} ms`),
      Effect.fail(
        new HealthError({
          reason: "circuit_open",
          message: `circuit breaker open after repeated database failures; next probe in ${circuit.retryAfterMs} ms`,
          latencyMs: undefined,
          warmupMs: db.warmup.durationMs,
          cause: undefined,
          retryAfterMs: circuit.retryAfterMs
        })
      )
    )
  }
  const latencyMs = yield* db.ping().pipe(
    Effect.catchAll((error) =>
      error._tag === "TimeoutError"
        ? fail("timeout", `probe did not answer within ${db.warmupConfig.healthTimeoutMs} ms`, error)
        : fail("unreachable", `${error._tag}${error.code ? ` (${error.code})` : ""}: ${error.message}`, error)
    )
  )
  count("pass")
  yield* Effect.logDebug(`Health check passed in ${latencyMs} ms`)
  return { status: "pass", latencyMs, warmupMs: db.warmup.durationMs, warmupAttempts: db.warmup.attempts } as const
}).pipe(Effect.withSpan("Database.health"))

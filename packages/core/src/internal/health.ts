/**
 * The health check of one `DatabaseService`, shared by `health` (the default
 * `Database`) and every `Database.Tag`'s `health`.
 */
import * as Effect from "effect/Effect"
import type { DatabaseService, HealthFailureDetails, HealthReport } from "../DatabaseService.js"
import { type DatabaseError, HealthError, type HealthFailureReason } from "../Errors.js"
import * as Metrics from "./metrics.js"
import { describe } from "@prisma-resilience/kernel/describe"
import { NOT_WRITABLE } from "./topology.js"

const count = (result: "pass" | HealthFailureReason) =>
  Metrics.record(Metrics.healthChecks, 1, Metrics.resultLabels(result))

/** A failed health check: counted in `db_health_checks_total`, logged at Warning. */
export const failure = (
  reason: HealthFailureReason,
  message: string,
  details: HealthFailureDetails = {}
): Effect.Effect<never, HealthError> =>
  Effect.suspend(() => {
    count(reason)
    return Effect.andThen(
      Effect.logWarning(`Health check failed: ${reason}: ${message}`),
      Effect.fail(
        new HealthError({
          reason,
          message,
          latencyMs: undefined,
          warmupMs: details.warmupMs,
          cause: details.cause,
          retryAfterMs: details.retryAfterMs,
          ...(details.nodes === undefined ? {} : { nodes: details.nodes })
        })
      )
    )
  })

export const check = (db: DatabaseService): Effect.Effect<HealthReport, HealthError> =>
  Effect.gen(function*() {
    // Listed with a failure too: during a failover they say what is going on.
    const nodes = yield* db.nodes
    const fail = (reason: HealthFailureReason, message: string, cause?: DatabaseError, retryAfterMs?: number) =>
      failure(reason, message, { cause, retryAfterMs, warmupMs: db.warmup.durationMs, nodes })
    if ((yield* db.state) === "shutting_down") {
      return yield* fail("shutting_down", "the service is shutting down")
    }
    // The probe takes the breaker's half-open slot when it is due, so health
    // can close the breaker with no other traffic; while the breaker is open
    // it sends nothing and health fails as the queries would.
    const latencyMs = yield* db.probe.pipe(
      Effect.catch((error) =>
        error._tag === "CircuitOpenError"
          ? fail("circuit_open", error.message, undefined, error.retryAfterMs)
          : error._tag === "TimeoutError"
          ? fail("timeout", `probe did not answer within ${db.warmupConfig.healthTimeoutMs} ms`, error)
          : error.code === NOT_WRITABLE
          ? fail("read_only", `${error.message}; looking for the writer`, error)
          : fail("unreachable", describe(error), error)
      )
    )
    // `SELECT 1` answered, but it cannot see a lock, a missing table or a
    // full pool: the queries' own outcomes can. The probe goes first so that
    // a database that is down is reported as such.
    const degraded = yield* db.queryPath
    if (degraded !== undefined) return yield* fail("degraded", `queries ${degraded.reason}: ${degraded.message}`)
    count("pass")
    yield* Effect.logDebug(`Health check passed in ${latencyMs} ms`)
    return {
      status: "pass",
      latencyMs,
      warmupMs: db.warmup.durationMs,
      warmupAttempts: db.warmup.attempts,
      ...(nodes === undefined ? {} : { nodes })
    } as const
  }).pipe(Effect.withSpan("Database.health"))

// The public surface of @prisma-resilience/core-effect3 as DESIGN.md promises it,
// imported the way a consumer does: by package name, through its `exports`.
import * as Core from "@prisma-resilience/core-effect3"
import type { DatabaseError, HealthError, HealthReport } from "@prisma-resilience/core-effect3"
import { Context, Effect, Metric, Schedule } from "effect"
import { describe, expect, expectTypeOf, it } from "vitest"

describe("@prisma-resilience/core-effect3 public surface", () => {
  it("exports every promised value", () => {
    const promised = [
      "ConnectionError",
      "EmptyResponseError",
      "TimeoutError",
      "TransactionError",
      "QueryError",
      "CircuitOpenError",
      "WarmupError",
      "HealthError",
      "isRetryable",
      "classify",
      "RetryPolicy",
      "RetryBudget",
      "CircuitBreaker",
      "Database",
      "health",
      "Metrics",
      "createResilientPrisma",
      "Setting",
      "databaseConfig"
    ] as const
    const missing = promised.filter((name) => (Core as Record<string, unknown>)[name] === undefined)
    expect(missing).toEqual([])
  })

  it("ships one way per thing and nothing marked internal", () => {
    const gone = {
      "Database.forClient": (Core.Database as unknown as Record<string, unknown>).forClient,
      isRetrySafe: (Core as Record<string, unknown>).isRetrySafe,
      "RetryPolicy.continueAfter": (Core.RetryPolicy as Record<string, unknown>).continueAfter,
      "CircuitBreaker.make": (Core.CircuitBreaker as Record<string, unknown>).make,
      "RetryBudget.make": (Core.RetryBudget as Record<string, unknown>).make,
      serverLimits: (Core as Record<string, unknown>).serverLimits,
      ...Object.fromEntries(
        Object.keys(Core.Metrics).filter((name) => name.endsWith("Labels") && name !== "databaseLabels")
          .map((name) => [`Metrics.${name}`, true])
      )
    }
    expect(Object.entries(gone).filter(([, value]) => value !== undefined).map(([name]) => name)).toEqual([])
  })

  it("errors carry operation, attempt and cause and form the DatabaseError union", () => {
    const fields = { operation: "op", attempt: 2, safety: "ambiguous", code: undefined, message: "m", cause: "c" } as const
    for (const E of [Core.ConnectionError, Core.EmptyResponseError, Core.TimeoutError, Core.TransactionError, Core.QueryError]) {
      const error: DatabaseError = new E(fields)
      expect({ operation: error.operation, attempt: error.attempt, cause: error.cause }).toEqual({
        operation: "op",
        attempt: 2,
        cause: "c"
      })
      expect(Core.isRetryable(error)).toBe(true)
    }
    expect(Core.isRetryable(new Core.QueryError({ ...fields, safety: "never" }))).toBe(false)
    expectTypeOf(Core.classify).parameters.toEqualTypeOf<[unknown, Core.ClassifyContext?]>()
    expectTypeOf(Core.classify).returns.toEqualTypeOf<DatabaseError>()
  })

  it("RetryPolicy: a Schedule, its config and the documented defaults", () => {
    expect(Core.RetryPolicy.defaults.delaysMs).toEqual([500, 1000])
    expect(Core.RetryPolicy.defaults.requestBudgetMs).toBe(9000)
    const schedule = Core.RetryPolicy.schedule(Core.RetryPolicy.defaults, { kind: "read", deadlineMs: Infinity })
    expect(Schedule.ScheduleTypeId in schedule).toBe(true)
    expect(typeof Core.RetryPolicy.config).toBe("object")
    expect(typeof Core.RetryPolicy.validate).toBe("function")
    expect(typeof Core.RetryPolicy.withBudget).toBe("function")
  })

  it("Database is a service tag with layer(options); the service offers query, transaction and ping", () => {
    expect(Context.isTag(Core.Database)).toBe(true)
    expect(typeof Core.Database.layer).toBe("function")
    expectTypeOf<Core.DatabaseService>().toHaveProperty("query")
    expectTypeOf<Core.DatabaseService>().toHaveProperty("transaction")
    expectTypeOf<Core.DatabaseService>().toHaveProperty("ping")
  })

  it("health requires Database", () => {
    expect(Effect.isEffect(Core.health)).toBe(true)
    expectTypeOf(Core.health).toEqualTypeOf<Effect.Effect<HealthReport, HealthError, Core.Database>>()
  })

  it("metrics carry the Prometheus names of DESIGN.md", () => {
    const { Metrics } = Core
    Effect.runSync(
      Effect.all([
        Metrics.warmupDuration(Effect.succeed(0)),
        Metrics.ready(Effect.succeed(0)),
        Metrics.queryDuration(Effect.succeed(0)),
        Metric.increment(Metrics.queryAttempts),
        Metric.increment(Metrics.queryRetries),
        Metric.increment(Metrics.healthChecks),
        Metrics.poolTotal(Effect.succeed(0)),
        Metrics.poolIdle(Effect.succeed(0)),
        Metrics.poolWaiting(Effect.succeed(0)),
        Metrics.retryBudgetTokens(Effect.succeed(0)),
        Metric.increment(Metrics.retriesRefused),
        Metrics.circuitState(Effect.succeed(0)),
        Metric.increment(Metrics.circuitRejections),
        Metric.increment(Metrics.statementCancellations),
        Metric.increment(Metrics.commitVerifications)
      ])
    )
    const names = new Set(Effect.runSync(Metric.snapshot).map((pair) => pair.metricKey.name))
    for (
      const name of [
        "db_warmup_duration_seconds",
        "db_ready",
        "db_query_duration_seconds",
        "db_query_attempts_total",
        "db_query_retries_total",
        "db_health_checks_total",
        "db_pool_connections",
        "db_pool_idle_connections",
        "db_pool_waiting_clients",
        "db_retry_budget_tokens",
        "db_retry_budget_refused_total",
        "db_circuit_state",
        "db_circuit_rejections_total",
        "db_statement_cancellations_total",
        "db_commit_verifications_total"
      ]
    ) expect(names).toContain(name)
  })

  it("binds a database to its client type with Database.Tag, and exports the Effect-free kernel", async () => {
    class Db extends Core.Database.Tag("SurfaceDb")<Db, Core.PrismaClientLike>() {}
    expect(Context.isTag(Db)).toBe(true)
    expect(Db.key).toBe("SurfaceDb")
    for (const member of ["make", "layer", "layerConfig", "query", "transaction", "health"] as const) {
      expect(Db[member], member).toBeDefined()
      expect(Core.Database[member], `Database.${member}`).toBeDefined()
    }
    const Kernel = await import("@prisma-resilience/kernel")
    expect(Kernel.diagnose({ code: "40001" }).tag).toBe("TransactionError")
    expect(typeof Kernel.CircuitBreaker.make).toBe("function")
  })
})


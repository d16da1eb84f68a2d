// The public surface of @prisma-resilience/core (Effect 4) and of its
// `./prisma` entry, imported the way a consumer does: by package name,
// through `exports` (the compiled dist/). No `effect` import here: this
// directory resolves Effect 3; core brings its checks of Effect 4 itself.
import * as Core from "@prisma-resilience/core"
import type { DatabaseError } from "@prisma-resilience/core"
import * as Adapter from "@prisma-resilience/core/prisma"
import { describe, expect, expectTypeOf, it } from "vitest"

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
  "classificationOf",
  "Setting",
  "databaseConfig",
  "connectionConfig",
  "databaseDefaults"
] as const

describe("@prisma-resilience/core (Effect 4) public surface", () => {
  it("exports every name the Effect 3 line exports", () => {
    const missing = promised.filter((name) => (Core as Record<string, unknown>)[name] === undefined)
    expect(missing).toEqual([])
  })

  it("ships one way per thing: what the Effect 3 line removed stays removed", () => {
    const gone = {
      "Database.forClient": (Core.Database as unknown as Record<string, unknown>).forClient,
      isRetrySafe: (Core as Record<string, unknown>).isRetrySafe,
      "RetryPolicy.continueAfter": (Core.RetryPolicy as Record<string, unknown>).continueAfter,
      "CircuitBreaker.make": (Core.CircuitBreaker as Record<string, unknown>).make,
      "RetryBudget.make": (Core.RetryBudget as Record<string, unknown>).make,
      serverLimits: (Core as Record<string, unknown>).serverLimits
    }
    expect(Object.entries(gone).filter(([, value]) => value !== undefined).map(([name]) => name)).toEqual([])
  })

  it("every Database tag has make, layer, layerConfig, query, transaction and health", () => {
    class Db extends Core.Database.Tag("SurfaceDb")<Db, Core.PrismaClientLike>() {}
    for (const tag of [Core.Database, Db]) {
      expect(["make", "layer", "layerConfig", "query", "transaction"].filter((k) => typeof (tag as any)[k] !== "function"))
        .toEqual([])
      expect(typeof tag.health).toBe("object")
    }
    expect(Db.key).toBe("SurfaceDb")
  })

  it("errors carry operation, attempt and cause and form the DatabaseError union", () => {
    const fields = { operation: "op", attempt: 2, safety: "ambiguous", code: undefined, message: "m", cause: "c" } as const
    for (const E of [Core.ConnectionError, Core.EmptyResponseError, Core.TimeoutError, Core.TransactionError, Core.QueryError]) {
      const error: DatabaseError = new E(fields)
      expect({ tag: error._tag, operation: error.operation, attempt: error.attempt, cause: error.cause })
        .toEqual({ tag: E.name, operation: "op", attempt: 2, cause: "c" })
      expect(Core.isRetryable(error)).toBe(true)
    }
    expect(Core.isRetryable(new Core.QueryError({ ...fields, safety: "never" }))).toBe(false)
    expectTypeOf(Core.classify).returns.toEqualTypeOf<DatabaseError>()
  })
})

describe("@prisma-resilience/core/prisma: the Promise adapter alone", () => {
  it("has the adapter, its errors and the classification, as the same objects as the main entry", () => {
    const shared = ["createResilientPrisma", "classificationOf", "classify", "isRetryable", "QueryError", "HealthError", "WarmupError"] as const
    expect(shared.filter((name) => (Adapter as Record<string, unknown>)[name] !== (Core as Record<string, unknown>)[name]))
      .toEqual([])
  })

  it("leaves out what only an Effect app reads (the Configs, which load Effect's Schema)", () => {
    const left = ["databaseConfig", "connectionConfig", "RetryPolicy", "Setting", "CircuitBreaker", "RetryBudget", "Database"]
    expect(left.filter((name) => name in Adapter)).toEqual([])
  })
})

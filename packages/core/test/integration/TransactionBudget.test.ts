// No request ends later than its budget plus 100 ms, transactions included
// (real PostgreSQL): an interactive transaction whose function hangs is ended
// by its attempt's timeout, never by a backstop past it, and the start-up
// arithmetic counts every term an attempt can take.
import { Database, type LayerOptions, RetryBudget, RetryPolicy } from "@prisma-resilience/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Logger, LogLevel, ManagedRuntime } from "effect"
import { afterAll, inject } from "vitest"
import { makePrismaClient, type PrismaClient } from "../fixture/client.js"
import { pool, warmup } from "../support/helpers.js"

const url = inject("databaseUrl")
const hang = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const optionsFor = (retry: Partial<RetryPolicy.RetryConfig>): LayerOptions<PrismaClient> => ({
  client: (settings) => makePrismaClient(url, settings),
  warmup,
  pool,
  retry: { ...RetryPolicy.defaults, ...retry },
  circuitBreaker: { failureThreshold: 0, resetTimeoutMs: 1000 },
  retryBudget: { ...RetryBudget.defaults, maxTokens: 0 }
})

describe("the request budget holds for transactions", () => {
  // One attempt that may take the whole budget but for its margin.
  const budgetMs = 2500
  const runtime = ManagedRuntime.make(
    Database.layer(optionsFor({ delaysMs: [], attemptTimeoutMs: 2400, requestBudgetMs: budgetMs, warmupWaitMs: 0 }))
  )
  afterAll(() => runtime.dispose())

  it("a transaction whose function hangs ends within its budget + 100 ms, with a TimeoutError", async () => {
    await runtime.runPromise(Database.pipe(Effect.flatMap((db) => db.ping())))
    const started = performance.now()
    const result = await runtime.runPromise(
      Effect.flatMap(Database, (db) =>
        db.transaction(async (tx: any) => {
          await tx.$queryRaw`SELECT 1`
          await hang(10_000)
          return 1
        })
      ).pipe(Effect.either, Logger.withMinimumLogLevel(LogLevel.Error))
    )
    const elapsed = performance.now() - started
    expect(Either.isLeft(result) && result.left._tag).toBe("TimeoutError")
    expect(elapsed).toBeLessThanOrEqual(budgetMs + 100)
  }, 30_000)

  it("the start-up check refuses a policy whose attempts and delays exceed the budget, showing the arithmetic", async () => {
    const refused = await Effect.runPromise(
      Effect.either(RetryPolicy.validate({ ...RetryPolicy.defaults, attemptTimeoutMs: 2500 }))
    )
    expect(Either.isLeft(refused) && refused.left.message).toMatch(
      /1500 ms warm-up wait \+ 3 attempts × 2500 ms \+ delays 500 \+ 1000 ms = 10500 ms > DB_REQUEST_BUDGET_MS 9000 ms/
    )
    expect(Either.isRight(await Effect.runPromise(Effect.either(RetryPolicy.validate(RetryPolicy.defaults))))).toBe(true)
  })
})

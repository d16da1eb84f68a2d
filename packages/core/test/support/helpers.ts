import { CircuitBreaker, Database, type DatabaseTag, type PoolSettings, RetryBudget, RetryPolicy, type WarmupConfig } from "@prisma-resilience/core"
import { makePrismaClient, poolStats, type PrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { Logger } from "effect"

export const warmup: WarmupConfig = {
  timeoutMs: 10_000,
  attemptTimeoutMs: 3000,
  backoffMs: 100,
  backoffMaxMs: 500,
  healthTimeoutMs: 1000,
  shutdownTimeoutMs: 3000
}

export const pool: PoolSettings = { max: 10, connectionTimeoutMillis: 2000, idleTimeoutMillis: 10_000 }

export const databaseLayer = (
  url: string,
  overrides: {
    retry?: Partial<RetryPolicy.RetryConfig>
    warmup?: Partial<WarmupConfig>
    pool?: Partial<PoolSettings>
    retryBudget?: RetryBudget.RetryBudgetConfig
    circuitBreaker?: CircuitBreaker.CircuitBreakerConfig
  } = {}
) =>
  Database.layer({
    client: (settings) => makePrismaClient(url, settings),
    poolStats,
    retry: { ...RetryPolicy.defaults, ...overrides.retry },
    warmup: { ...warmup, ...overrides.warmup },
    pool: { ...pool, ...overrides.pool },
    retryBudget: overrides.retryBudget ?? RetryBudget.defaults,
    circuitBreaker: overrides.circuitBreaker ?? CircuitBreaker.defaults
  })

/** Collects log messages instead of printing them. */
export const captureLogs = () => {
  const lines: Array<string> = []
  const levels: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
    // Effect 3 labels (WARN, INFO, …), which the tests were written against
    levels.push(logLevel.toUpperCase())
  })
  return { lines, levels, layer: Logger.layer([logger]) }
}

// The default `Database`, its accessors typed for the fixture client.
export const Db = Database as unknown as DatabaseTag<Database, "@prisma-resilience/core/Database", PrismaClient>

// Database attempts per request while PostgreSQL is down, with the plain retry
// policy and with the retry budget + circuit breaker (the defaults): the
// driver of the Outage integration test (packages/core-effect3/test/support/outage.ts)
// run once per policy against a PostgreSQL of this benchmark's own.
//
//   npx tsx bench/outage.ts
import { CircuitBreaker, RetryBudget } from "@prisma-resilience/core-effect3"
import { Effect, Logger, LogLevel } from "effect"
import { type OutageFigures, runOutage } from "../packages/core-effect3/test/support/outage.js"
import { machine, withCluster } from "./support.js"

const clients = 4
const pauseMs = 50

const policies = [
  {
    name: "plain (2 retries, budget and breaker off)",
    outageMs: 3000,
    retryBudget: { ...RetryBudget.defaults, maxTokens: 0 },
    circuitBreaker: { ...CircuitBreaker.defaults, failureThreshold: 0 }
  },
  {
    name: `budget (${RetryBudget.defaults.maxTokens} tokens, ratio ${RetryBudget.defaults.tokenRatio}) + breaker ` +
      `(${CircuitBreaker.defaults.failureThreshold} failures, ${CircuitBreaker.defaults.resetTimeoutMs / 1000} s reset)`,
    outageMs: 10_000,
    retryBudget: RetryBudget.defaults,
    circuitBreaker: CircuitBreaker.defaults
  }
] as const

const main = () =>
  withCluster(async (cluster) => {
    const results: Array<{ policy: (typeof policies)[number]; figures: OutageFigures }> = []
    for (const [i, policy] of policies.entries()) {
      const figures = await Effect.runPromise(
        runOutage({ cluster, clients, pauseMs, ...policy, operation: `bench.outage.${i}` }).pipe(
          Logger.withMinimumLogLevel(LogLevel.Error)
        )
      )
      if (figures.otherFailures.length > 0) throw new Error(`unexpected failures: ${figures.otherFailures.join("; ")}`)
      results.push({ policy, figures })
    }

    console.log(
      `SELECT 1 through Database.query while PostgreSQL is down (fast shutdown), ${clients} clients ` +
        `(request, then ${pauseMs} ms pause); ${await machine(cluster)}`
    )
    console.log(`| policy | outage | requests | database attempts | attempts per request | recovery (accepting → first success) |`)
    console.log(`|---|---|---|---|---|---|`)
    for (const { policy, figures } of results) {
      console.log(
        `| ${policy.name} | ${policy.outageMs / 1000} s | ${figures.requests} | ${figures.attempts} | ` +
          `${figures.attemptsPerRequest.toFixed(3)} | ` +
          `${figures.recoveryMs === undefined ? "none within 15 s" : `${figures.recoveryMs} ms`} |`
      )
    }
  })

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

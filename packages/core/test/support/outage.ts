// Steady query load against a database that goes down and comes back, counting
// what reaches the driver. Shared by the outage test and bench/outage.ts.
import type { CircuitBreaker, RetryBudget } from "@prisma-resilience/core"
import type { Cluster } from "@prisma-resilience/devdb"
import type { PrismaClient } from "../../../core-effect3/test/fixture/client.js"
import { Effect, Fiber, Metric } from "effect"
import { databaseLayer, Db } from "./helpers.js"

export interface OutageOptions {
  readonly cluster: Cluster
  readonly outageMs: number
  /** concurrent clients, each sending a request, then pausing `pauseMs` */
  readonly clients: number
  readonly pauseMs: number
  readonly retryBudget: RetryBudget.RetryBudgetConfig
  readonly circuitBreaker: CircuitBreaker.CircuitBreakerConfig
  /** unique per run: metrics are global */
  readonly operation: string
}

export interface OutageFigures {
  readonly requests: number
  readonly failed: number
  /** attempts that reached the driver while the database was down */
  readonly attempts: number
  readonly attemptsPerRequest: number
  /** database accepting connections again → first successful request, ms */
  readonly recoveryMs: number | undefined
  readonly otherFailures: ReadonlyArray<string>
}

const attemptsSoFar = (operation: string) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs
      .filter((pair) =>
        pair.id === "db_query_attempts_total" && pair.attributes?.operation === operation
      )
      .reduce((sum, pair) => sum + Number((pair.state as { count?: number }).count ?? 0), 0))

/**
 * Warms up against the running cluster, stops it (fast shutdown) under steady
 * load for `outageMs`, starts it again and waits for the first success.
 */
export const runOutage = (options: OutageOptions) =>
  Effect.gen(function*() {
    const { cluster, operation } = options
    const request = Db.query((c: PrismaClient) => c.$queryRaw`SELECT 1`, { operation })
    let running = true
    let requests = 0
    let failed = 0
    let firstSuccessAt: number | undefined
    const otherFailures: Array<string> = []
    const client = Effect.gen(function*() {
      while (running) {
        requests++
        const exit = yield* Effect.result(request)
        if (exit._tag === "Failure") {
          failed++
          if (!["ConnectionError", "TimeoutError", "CircuitOpenError"].includes(exit.failure._tag)) {
            otherFailures.push(`${exit.failure._tag}: ${exit.failure.message}`)
          }
        } else {
          firstSuccessAt ??= Date.now()
        }
        yield* Effect.sleep(options.pauseMs)
      }
    })
    const load = Effect.forEach(Array.from({ length: options.clients }), () => Effect.forkChild(client))

    yield* request
    yield* Effect.promise(() => cluster.stop("fast"))
    const before = yield* attemptsSoFar(operation)
    const outage = yield* load
    yield* Effect.sleep(options.outageMs)
    // Requests started during the outage finish before anything is counted.
    running = false
    yield* Effect.forEach(outage, Fiber.join)
    const attempts = (yield* attemptsSoFar(operation)) - before
    const counted = { requests, failed }

    running = true
    firstSuccessAt = undefined
    yield* Effect.promise(() => cluster.start())
    const acceptingAt = Date.now()
    const recovery = yield* load
    // Bounded: the breaker's reset time plus the retry schedule, with room to spare.
    for (let waited = 0; firstSuccessAt === undefined && waited < 15_000; waited += 20) yield* Effect.sleep(20)
    running = false
    yield* Effect.forEach(recovery, Fiber.join)
    return {
      ...counted,
      attempts,
      attemptsPerRequest: attempts / Math.max(1, counted.requests),
      recoveryMs: firstSuccessAt === undefined ? undefined : Math.max(0, firstSuccessAt - acceptingAt),
      otherFailures
    } satisfies OutageFigures
  }).pipe(
    Effect.provide(
      databaseLayer(options.cluster.url, {
        retryBudget: options.retryBudget,
        circuitBreaker: options.circuitBreaker
      })
    )
  )

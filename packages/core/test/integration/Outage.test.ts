// A real PostgreSQL stopped under steady load: the retry budget and circuit
// breaker keep database attempts near one per request; the plain policy makes
// three.
import { CircuitBreaker, RetryBudget } from "@prisma-resilience/core"
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import { describe, expect, it } from "../support/vitest.js"
import { Effect, References } from "effect"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll } from "vitest"
import { runOutage } from "../support/outage.js"

const clusters: Array<Cluster> = []
afterAll(async () => {
  await Promise.allSettled(clusters.map((c) => c.destroy()))
})
const ownCluster = Effect.promise(async () => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "core-outage-")) })
  clusters.push(cluster)
  return cluster
})

describe("outage amplification on a real PostgreSQL", () => {
  it.live("with budget and breaker: at most 1.2 database attempts per request over a 10 s outage, then recovery", () =>
    Effect.gen(function*() {
      const figures = yield* runOutage({
        cluster: yield* ownCluster,
        outageMs: 10_000,
        clients: 4,
        pauseMs: 50,
        retryBudget: RetryBudget.defaults,
        circuitBreaker: CircuitBreaker.defaults,
        operation: `outage.guarded.${process.pid}`
      })
      console.info(`[core] outage with budget + breaker: ${JSON.stringify(figures)}`)
      expect(figures.otherFailures).toEqual([])
      expect(figures.requests).toBeGreaterThan(20)
      expect(figures.failed).toBe(figures.requests)
      expect(figures.attemptsPerRequest).toBeLessThanOrEqual(1.2)
      expect(figures.recoveryMs).toBeDefined()
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")), 60_000)

  it.live("the plain policy (budget and breaker off) makes about three attempts per request", () =>
    Effect.gen(function*() {
      const figures = yield* runOutage({
        cluster: yield* ownCluster,
        outageMs: 3000,
        clients: 4,
        pauseMs: 50,
        retryBudget: { ...RetryBudget.defaults, maxTokens: 0 },
        circuitBreaker: { ...CircuitBreaker.defaults, failureThreshold: 0 },
        operation: `outage.plain.${process.pid}`
      })
      console.info(`[core] outage with the plain policy: ${JSON.stringify(figures)}`)
      expect(figures.otherFailures).toEqual([])
      expect(figures.attemptsPerRequest).toBeGreaterThan(2.5)
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")), 60_000)
})

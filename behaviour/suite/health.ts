// Health tells the truth both ways: it fails while queries fail, and it passes
// again once they would succeed, with no other traffic (behind a readiness
// gate an instance whose health fails gets no query at all, so health's own
// probe must close the breaker and end a spell of failed queries).
// (The Promise adapter's case was in packages/core-effect3/test/integration/HealthRecovery.test.ts.)
import { describe, expect, it } from "vitest"
import { type Binding, type Client, settle } from "../binding.js"
import { pollHealth, reasonsFor, resources, settings, sharedUrl, sql, unique, verdict, whenReady } from "./support.js"

const RESET_MS = 1000
const HEALTH_TIMEOUT_MS = 1000
const POLL_MS = 200

const settingsFor = (failureThreshold: number) =>
  settings({
    retry: { delaysMs: [100, 100], attemptTimeoutMs: 1500, requestBudgetMs: 9000, warmupWaitMs: 1500 },
    warmup: { healthTimeoutMs: HEALTH_TIMEOUT_MS },
    circuitBreaker: { failureThreshold, resetTimeoutMs: RESET_MS, resetJitter: 0 }
  })

export const describeHealth = (binding: Binding) =>
  describe(`health (${binding.name})`, () => {
    const own = resources()

    it("passes, fails while the server is down and the breaker open, and passes again with no other call", async () => {
      const cluster = await own.cluster()
      const db = own.open(binding, { url: cluster.url, settings: settingsFor(2) })
      expect(await db.query((c) => c.purchaseOrder.count())).toBe(0)
      expect(await verdict(db)).toBe("pass")
      await cluster.stop("fast")
      // Two failed requests open the breaker (threshold 2).
      for (let i = 0; i < 2; i++) {
        const failed = await settle(db.query((c: Client) => c.purchaseOrder.count()))
        expect(failed.ok).toBe(false)
      }
      expect(await verdict(db)).toBe("circuit_open")
      await cluster.start()
      // Only health from here on: it must pass within one reset interval plus one probe.
      const { passedAfterMs, seen } = await pollHealth(db, RESET_MS + HEALTH_TIMEOUT_MS + 4000, POLL_MS)
      console.info(`[behaviour] ${binding.name}: breaker open → health pass after ${passedAfterMs} ms (${seen.join(" → ")})`)
      expect(passedAfterMs, `health reasons: ${seen.join(" → ")}`).toBeDefined()
      expect(passedAfterMs!).toBeLessThanOrEqual(RESET_MS + HEALTH_TIMEOUT_MS + POLL_MS + 1000)
      // and queries do succeed now
      expect(await db.query((c) => c.purchaseOrder.count())).toBe(0)
    }, 60_000)

    it("a missing table: health fails with no traffic while it is missing, and passes once it exists", async () => {
      const url = sharedUrl()
      const db = own.open(binding, { url, settings: settingsFor(0) })
      const table = unique("canary").replace(/\W/g, "_")
      await sql(url, `CREATE TABLE ${table}_moved (id int)`)
      own.own(table, () => sql(url, `DROP TABLE IF EXISTS ${table}; DROP TABLE IF EXISTS ${table}_moved`))
      await whenReady(db)
      expect(await verdict(db)).toBe("pass")
      for (let i = 0; i < 3; i++) {
        const failed = await settle(db.query((c) => c.$queryRawUnsafe(`SELECT count(*) FROM ${table}`)))
        expect(failed.ok ? "resolved" : failed.failure._tag).toBe("QueryError")
      }
      expect(await verdict(db)).toBe("degraded")
      // SELECT 1 would pass all along; health does not, for well over a breaker reset
      expect(await reasonsFor(db, 3 * RESET_MS, POLL_MS)).toEqual(["degraded"])
      await sql(url, `ALTER TABLE ${table}_moved RENAME TO ${table}`)
      const { passedAfterMs, seen } = await pollHealth(db, 3000, POLL_MS)
      expect(passedAfterMs, `health reasons: ${seen.join(" → ")}`).toBeDefined()
    }, 60_000)
  })

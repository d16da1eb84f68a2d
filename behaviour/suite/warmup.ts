// Warm-up: a server that is not up yet when the database is opened. Health
// fails `warming` until warm-up has finished (never passes before it); a
// request made meanwhile waits for it, at most DB_WARMUP_WAIT_MS within its
// budget, and is then refused without anything sent.
import { beforeAll, describe, expect, it } from "vitest"
import type { Cluster } from "@prisma-resilience/devdb"
import { type Binding, settle } from "../binding.js"
import { resources, settings, sleep, verdict } from "./support.js"

const WAIT_MS = 4000
const SLACK_MS = 200

const late = settings({
  retry: { delaysMs: [500, 1000], attemptTimeoutMs: 1000, requestBudgetMs: 9000, warmupWaitMs: WAIT_MS }
})

export const describeWarmup = (binding: Binding) =>
  describe(`warm-up (${binding.name})`, () => {
    const own = resources()
    let cluster: Cluster
    // created, not started: the tests below start it
    beforeAll(async () => {
      cluster = await own.cluster(false)
    }, 60_000)

    it("a request made while the server stays down is refused once its warm-up wait is over, nothing sent", async () => {
      const db = own.open(binding, { url: cluster.url, settings: settings({ ...late, retry: { ...late.retry, warmupWaitMs: 1000 } }) })
      expect(await verdict(db)).toBe("warming")
      let sent = 0
      const started = performance.now()
      const result = await settle(db.query((c) => (sent++, c.$queryRaw`SELECT 1`)))
      const elapsedMs = performance.now() - started
      expect(result.ok ? "resolved" : [result.failure._tag, result.failure.safety, result.failure.attempt]).toEqual([
        "ConnectionError",
        "before-send",
        0
      ])
      expect(sent).toBe(0)
      expect(elapsedMs).toBeLessThanOrEqual(1000 + SLACK_MS)
      // the warm-up goes on (its own timeout is 10 s): still warming, never pass
      expect(await verdict(db)).toBe("warming")
    }, 30_000)

    it("a server that starts late: health says warming until then, and the first request waits and succeeds", async () => {
      const db = own.open(binding, { url: cluster.url, settings: late })
      expect(await verdict(db)).toBe("warming")
      const first = settle(db.query((c) => c.$queryRaw<Array<{ one: number }>>`SELECT 1::int AS one`))
      await sleep(300)
      expect(await verdict(db)).toBe("warming")
      const startedAt = Date.now()
      await cluster.start()
      console.info(`[behaviour] ${binding.name}: the late server accepted connections after ${Date.now() - startedAt} ms`)
      const result = await first
      expect(result.ok ? result.value : result.failure).toEqual([{ one: 1 }])
      expect(await verdict(db)).toBe("pass")
    }, 30_000)
  })

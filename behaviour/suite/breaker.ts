// The circuit breaker: after DB_CIRCUIT_FAILURE_THRESHOLD consecutive failed
// requests a query fails fast with CircuitOpenError, its function never
// called (nothing is sent); after the reset time one probe goes through, and
// its success closes the breaker (a real server, stopped and started).
import { describe, expect, it } from "vitest"
import { type Binding, type Client, settle } from "../binding.js"
import { ordersLike, resources, settings, sleep, unique } from "./support.js"

const THRESHOLD = 2
const RESET_MS = 2000

export const describeBreaker = (binding: Binding) =>
  describe(`the circuit breaker (${binding.name})`, () => {
    const own = resources()

    it("opens after consecutive failures, refuses without sending, and closes after a successful probe", async () => {
      const cluster = await own.cluster()
      const { proxy, url } = await own.proxy(cluster.url)
      const db = own.open(binding, {
        url,
        settings: settings({
          retry: { delaysMs: [], attemptTimeoutMs: 1500 },
          circuitBreaker: { failureThreshold: THRESHOLD, resetTimeoutMs: RESET_MS, resetJitter: 0 }
        })
      })
      const count = () => db.query((c: Client) => c.purchaseOrder.count())
      expect(await count()).toBe(0)
      await cluster.stop("fast")

      // The server is down: the requests of the closed breaker are sent (a
      // pooled connection the stop killed may fail one without a new
      // connection, so the count is over all of them).
      const before = proxy.accepted
      for (let i = 0; i < THRESHOLD; i++) {
        const failed = await settle(count())
        expect(failed.ok ? "resolved" : failed.failure._tag).toBe("ConnectionError")
      }
      expect(proxy.accepted, "the requests of the closed breaker are sent").toBeGreaterThan(before)

      const connections = proxy.accepted
      const refused = await settle(count())
      const openedAt = Date.now()
      expect(refused.ok ? "resolved" : refused.failure._tag).toBe("CircuitOpenError")
      expect(proxy.accepted, "a request refused by the open breaker sends nothing").toBe(connections)

      await cluster.start()
      // still open until the reset time has passed, whatever the server does
      if (RESET_MS - (Date.now() - openedAt) > 300) {
        const early = await settle(count())
        expect(early.ok ? "resolved" : early.failure._tag).toBe("CircuitOpenError")
        expect(proxy.accepted).toBe(connections)
      }
      await sleep(Math.max(0, RESET_MS - (Date.now() - openedAt)) + 200)
      // the probe: sent, succeeds, and closes the breaker for everyone
      expect(await count()).toBe(0)
      expect(proxy.accepted).toBeGreaterThan(connections)
      expect(await Promise.all([count(), count(), count()])).toEqual([0, 0, 0])
    }, 60_000)

    // A query function that is async (not one Prisma promise) starts sending
    // when it is called. Core used to call it to set its first attempt up
    // before asking the breaker, so a request refused with CircuitOpenError
    // (safety "never": a caller may retry it) had already committed its first
    // statement. Found by this suite (2026-12-05); fixed in internal/query.ts.
    it("an async write refused by the open breaker sends nothing", async () => {
      const cluster = await own.cluster()
      const db = own.open(binding, {
        url: cluster.url,
        settings: settings({
          retry: { delaysMs: [] },
          circuitBreaker: { failureThreshold: THRESHOLD, resetTimeoutMs: 10_000, resetJitter: 0 }
        })
      })
      expect(await db.query((c) => c.purchaseOrder.count())).toBe(0)
      await cluster.stop("fast")
      for (let i = 0; i < THRESHOLD; i++) await settle(db.query((c: Client) => c.purchaseOrder.count()))
      // back, but the breaker stays open for 10 s
      await cluster.start()
      const reference = unique("refused")
      const refused = await settle(db.query(async (c: Client) => c.purchaseOrder.create({ data: { reference, totalCents: 1 } })))
      expect(refused.ok ? "resolved" : [refused.failure._tag, refused.failure.safety]).toEqual(["CircuitOpenError", "never"])
      // anything sent would have long been committed by then
      await sleep(1000)
      expect(await ordersLike(cluster.url, reference), "rows written by a request refused with CircuitOpenError").toBe(0)
    }, 60_000)
  })

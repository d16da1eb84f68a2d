// The request budget: no request ends later than its budget plus 100 ms in
// any fault, and no retry starts past the deadline. The database does not
// answer: the fault proxy in front of it stalls every connection (accepted,
// nothing forwarded, nothing closed). (The hanging transaction was
// packages/core-effect3/test/integration/TransactionBudget.test.ts; its start-up
// arithmetic check is in packages/core-effect3/test/RetryPolicy.test.ts.)
import { beforeAll, describe, expect, it } from "vitest"
import { type Binding, type BoundDatabase, type Client, settle } from "../binding.js"
import { resources, settings, sharedUrl, whenReady } from "./support.js"

const SLACK_MS = 100

/** A request timed, and how many attempts it made (calls of its function). */
const timed = async <A>(request: (count: () => void) => Promise<A>) => {
  let attempts = 0
  const started = performance.now()
  const result = await settle(request(() => attempts++))
  return { result, elapsedMs: performance.now() - started, attempts }
}

export const describeBudget = (binding: Binding) =>
  describe(`the request budget (${binding.name})`, () => {
    const own = resources()
    let stalled: { proxy: { stall(on: boolean): void; cutAll(): void }; url: string }

    // Three attempts of 800 ms and 200 + 400 ms of delays fill the budget exactly.
    const BUDGET_MS = 3000
    let db: BoundDatabase
    beforeAll(async () => {
      stalled = await own.proxy(sharedUrl())
      db = own.open(binding, {
        url: stalled.url,
        settings: settings({
          retry: { delaysMs: [200, 400], attemptTimeoutMs: 800, requestBudgetMs: BUDGET_MS, warmupWaitMs: 0 },
          circuitBreaker: { failureThreshold: 0 },
          retryBudget: { maxTokens: 0 }
        })
      })
      // no wait for warm-up in this policy: the requests below start after it
      await whenReady(db)
    })

    const withStall = async <A>(run: () => Promise<A>) => {
      stalled.proxy.stall(true)
      try {
        return await run()
      } finally {
        // the stalled connections go; the pool opens new ones
        stalled.proxy.stall(false)
        stalled.proxy.cutAll()
      }
    }

    it("a read while the database does not answer: every attempt made, a TimeoutError within the budget", async () => {
      const { attempts, elapsedMs, result } = await withStall(() =>
        timed((count) => db.query((c: Client) => (count(), c.purchaseOrder.count())))
      )
      expect(result.ok ? "resolved" : result.failure._tag).toBe("TimeoutError")
      expect(attempts).toBe(3)
      expect(elapsedMs).toBeLessThanOrEqual(BUDGET_MS + SLACK_MS)
    }, 30_000)

    it("retries stop at the deadline: a schedule longer than the budget is cut short by it", async () => {
      // Ten attempts of 500 ms with 300 ms between them would take 7.7 s; the budget is 2 s.
      const retry = { delaysMs: Array.from({ length: 9 }, () => 300), attemptTimeoutMs: 500, requestBudgetMs: 2000 }
      const { attempts, elapsedMs, result } = await withStall(() =>
        timed((count) => db.query((c: Client) => (count(), c.purchaseOrder.count()), { retry }))
      )
      expect(result.ok ? "resolved" : result.failure._tag).toBe("TimeoutError")
      expect(elapsedMs).toBeLessThanOrEqual(2000 + SLACK_MS)
      // retried, but no attempt started past the deadline: at most 3 fit in 2 s
      expect(attempts).toBeGreaterThanOrEqual(2)
      expect(attempts).toBeLessThanOrEqual(3)
    }, 30_000)

    it("the database answers again: the next request succeeds", async () => {
      expect(await db.query((c) => c.purchaseOrder.count())).toBeTypeOf("number")
    }, 30_000)

    it("a transaction whose function hangs ends within its budget + 100 ms, with a TimeoutError", async () => {
      // One attempt that may take the whole budget but for its margin.
      const budgetMs = 2500
      const hanging = own.open(binding, {
        url: sharedUrl(),
        settings: settings({
          retry: { delaysMs: [], attemptTimeoutMs: 2400, requestBudgetMs: budgetMs, warmupWaitMs: 0 },
          circuitBreaker: { failureThreshold: 0 },
          retryBudget: { maxTokens: 0 }
        })
      })
      await whenReady(hanging)
      const { elapsedMs, result } = await timed(() =>
        hanging.transaction(async (tx) => {
          await tx.$queryRaw`SELECT 1`
          await new Promise((resolve) => setTimeout(resolve, 10_000))
          return 1
        })
      )
      expect(result.ok ? "resolved" : result.failure._tag).toBe("TimeoutError")
      expect(elapsedMs).toBeLessThanOrEqual(budgetMs + SLACK_MS)
    }, 30_000)
  })

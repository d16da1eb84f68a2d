// An ambiguous COMMIT gets a definite answer: the fault proxy cuts the
// connection exactly when COMMIT is sent (before the server got it, or
// after), and the layer asks txid_status what happened before anything runs
// again (see packages/core-effect3/test/integration/CommitVerification.test.ts for
// the proxy's own checks and the metrics and logs of each outcome).
import { beforeAll, describe, expect, it } from "vitest"
import type { TcpProxy } from "@prisma-resilience/devdb"
import { type Binding, settle, type TxClient } from "../binding.js"
import { ordersLike, resources, settings, sharedUrl, unique } from "./support.js"

/** The armed cut, failing fast when no COMMIT was sent at all. */
const cutDone = (cut: Promise<void>) =>
  Promise.race([
    cut,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no COMMIT was cut within 5 s")), 5000))
  ])

const retry = { delaysMs: [50, 50] }

export const describeCommitVerification = (binding: Binding) =>
  describe(`commit verification (${binding.name})`, () => {
    const own = resources()
    const url = sharedUrl()
    let proxy: TcpProxy
    let viaProxy: string
    beforeAll(async () => {
      ;({ proxy, url: viaProxy } = await own.proxy(url))
    })

    const order = (reference: string, runs: { n: number }) => async (tx: TxClient) => {
      runs.n++
      const created = await tx.purchaseOrder.create({ data: { reference, totalCents: 100 } })
      return { id: created.id, run: runs.n }
    }

    it("an idempotent transaction whose COMMIT reached the server: verified committed, its value returned, not run again", async () => {
      const db = own.open(binding, { url: viaProxy, settings: settings({ retry, pool: { max: 2 } }) })
      await db.query((c) => c.$queryRaw`SELECT 1`)
      const reference = unique("committed")
      const runs = { n: 0 }
      const cut = proxy.cutOnCommit("after")
      const cuts = proxy.commitCuts
      const result = await settle(db.transaction(order(reference, runs), { idempotent: true }))
      await cutDone(cut)
      expect(proxy.commitCuts).toBe(cuts + 1)
      expect(result.ok ? result.value.run : result.failure).toBe(1)
      expect(runs.n).toBe(1)
      expect(await ordersLike(url, reference)).toBe(1)
      const stored = await db.query((c) => c.purchaseOrder.findUnique({ where: { reference } }))
      expect(result.ok && stored?.id).toBe(result.ok && result.value.id)
    }, 30_000)

    it("a COMMIT cut before the server got it: rolled back, the function runs again, exactly one row", async () => {
      const db = own.open(binding, { url: viaProxy, settings: settings({ retry, pool: { max: 2 } }) })
      await db.query((c) => c.$queryRaw`SELECT 1`)
      const reference = unique("aborted")
      const runs = { n: 0 }
      const cut = proxy.cutOnCommit("before")
      const result = await settle(db.transaction(order(reference, runs)))
      await cutDone(cut)
      expect(result.ok ? result.value.run : result.failure).toBe(2)
      expect(runs.n).toBe(2)
      expect(await ordersLike(url, reference)).toBe(1)
    }, 30_000)

    it("when txid_status cannot be asked (no new connection gets through), the ambiguous error stays and nothing runs again", async () => {
      // The pool's only connection is open; every new one is refused.
      const db = own.open(binding, { url: viaProxy, settings: settings({ retry: { ...retry, attemptTimeoutMs: 1000 }, pool: { max: 1 } }) })
      await db.query((c) => c.$queryRaw`SELECT 1`)
      const reference = unique("unknown")
      const runs = { n: 0 }
      proxy.refuse(true)
      const cut = proxy.cutOnCommit("after")
      const result = await settle(db.transaction(order(reference, runs))).finally(() => proxy.refuse(false))
      await cutDone(cut)
      expect(result.ok ? "resolved" : [result.failure.safety, result.failure.message]).toEqual([
        "ambiguous",
        expect.stringMatching(/commit outcome unknown/)
      ])
      expect(runs.n).toBe(1)
      // It did commit: exactly why it must not run again.
      expect(await ordersLike(url, reference)).toBe(1)
    }, 30_000)
  })

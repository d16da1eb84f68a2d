// Retry safety: a retry never duplicates a write, and a safe retry is not
// skipped. Faults: a connection cut mid-statement (the fault proxy), a server
// that is down when a write is sent (before-send), and a statement the
// server commits but answers only after the attempt timed out (pg_sleep past
// DB_ATTEMPT_TIMEOUT_MS with the server-side limits off, as when a proxy
// holds the replies). What may run again is decided by the most dangerous
// call the query function made, and an attempt that timed out is fenced: a
// call it makes afterwards (an async function still running) sends nothing.
// (The timed-out cases were packages/core-effect3/test/integration/NoDuplicateWrites.test.ts.)
import { beforeAll, describe, expect, it } from "vitest"
import { type Binding, type Client, settle } from "../binding.js"
import { ordersLike, resources, settings, sharedUrl, sleep, sql, unique } from "./support.js"

const SLOW_S = 1.3

// Neither the breaker nor the retry budget may decide here: each case is about retry safety alone.
const safetyOnly = settings({
  retry: { delaysMs: [50, 50], attemptTimeoutMs: 1000, requestBudgetMs: 9000, warmupWaitMs: 1500 },
  serverTimeouts: { enabled: false },
  circuitBreaker: { failureThreshold: 0, resetTimeoutMs: 1000 },
  retryBudget: { maxTokens: 0 }
})

/** The query functions, each writing rows tagged `tag` into `table`; only attempt 1 is slow where it says so. */
const cases = (table: string, tag: string) => {
  let calls = 0
  const sleepFirst = () => (++calls === 1 ? SLOW_S : 0)
  return {
    insertReturning: (c: Client) =>
      c.$queryRawUnsafe(`INSERT INTO ${table} (tag) SELECT $1 FROM pg_sleep(${SLOW_S}) RETURNING id`, tag),
    countThenInsertTogether: (c: Client) =>
      Promise.all([
        c.$queryRaw`SELECT 1`,
        c.$executeRawUnsafe(`INSERT INTO ${table} (tag) SELECT $1 FROM pg_sleep(${SLOW_S})`, tag)
      ]),
    readThenWrite: async (c: Client) => {
      await c.$queryRawUnsafe(`SELECT 1 AS one FROM pg_sleep(${sleepFirst()})`)
      return c.$executeRawUnsafe(`INSERT INTO ${table} (tag) VALUES ($1)`, tag)
    },
    slowRead: (c: Client) => c.$queryRawUnsafe<Array<{ answer: number }>>(`SELECT 42 AS answer FROM pg_sleep(${sleepFirst()})`)
  }
}

export const describeRetrySafety = (binding: Binding) =>
  describe(`retry safety (${binding.name})`, () => {
    const own = resources()
    const url = sharedUrl()
    const table = `dup_probe_${unique("t").replace(/\W/g, "_")}`
    const rows = async (tag: string) =>
      (await sql<{ n: number }>(url, `SELECT count(*)::int AS n FROM ${table} WHERE tag = $1`, [tag]))[0]!.n
    /** rows written with `tag`, after the slowest abandoned statement would have finished */
    const rowsLater = async (tag: string) => {
      await sleep(SLOW_S * 1000 + 700)
      return rows(tag)
    }

    beforeAll(async () => {
      await sql(url, `CREATE TABLE ${table} (id serial PRIMARY KEY, tag text NOT NULL)`)
      own.own(table, () => sql(url, `DROP TABLE IF EXISTS ${table}`))
    })

    describe("a connection cut mid-statement (fault proxy)", () => {
      let cut: { proxy: { cutAll(): void }; url: string }
      let db: ReturnType<typeof own.open>
      beforeAll(async () => {
        cut = await own.proxy(url)
        db = own.open(binding, { url: cut.url, settings: safetyOnly })
        await db.query((c) => c.$queryRaw`SELECT 1`)
      })

      /** runs `statement`; the first attempt's connection is cut 300 ms after it was sent */
      const cutOnce = <A>(statement: (c: Client) => PromiseLike<A>) => {
        let calls = 0
        const f = (c: Client) => {
          if (++calls === 1) setTimeout(() => cut.proxy.cutAll(), 300)
          return statement(c)
        }
        return { f, calls: () => calls }
      }

      it("a read whose connection drops is retried and succeeds", async () => {
        const read = cutOnce((c) => c.$queryRawUnsafe<Array<{ answer: number }>>("SELECT 42 AS answer FROM pg_sleep(0.8)"))
        const result = await settle(db.query(read.f))
        expect(result.ok ? result.value[0]!.answer : result.failure).toBe(42)
        expect(read.calls()).toBe(2)
      }, 30_000)

      it("a write whose connection drops is ambiguous: not retried, one row", async () => {
        const tag = unique("cut-write")
        const write = cutOnce((c) => c.$executeRawUnsafe(`INSERT INTO ${table} (tag) SELECT $1 FROM pg_sleep(0.8)`, tag))
        const result = await settle(db.query(write.f))
        expect(result.ok ? "resolved" : [result.failure._tag, result.failure.safety]).toEqual(["ConnectionError", "ambiguous"])
        expect(write.calls()).toBe(1)
        // The server ran the INSERT to its end: it committed once and was not asked again.
        await sleep(1000)
        expect(await rows(tag)).toBe(1)
      }, 30_000)

      it("a write declared idempotent is retried after the same cut, and stays one row", async () => {
        const reference = unique("cut-idempotent")
        // idempotent by its key: a second run finds the first one's row and does nothing
        const write = cutOnce((c) =>
          c.$executeRawUnsafe(
            `INSERT INTO purchase_order (id, reference, total_cents)
             SELECT gen_random_uuid(), $1, 1 FROM pg_sleep(0.8) ON CONFLICT (reference) DO NOTHING`,
            reference
          ))
        const result = await settle(db.query(write.f, { kind: "idempotent-write" }))
        expect(result.ok ? "resolved" : result.failure).toBe("resolved")
        expect(write.calls()).toBe(2)
        expect(await ordersLike(url, reference)).toBe(1)
      }, 30_000)
    })

    it("a write that never reached the server (server down, connection refused) is retried and written once", async () => {
      const cluster = await own.cluster()
      const db = own.open(binding, {
        url: cluster.url,
        settings: settings({ retry: { delaysMs: [500, 1000, 2000], attemptTimeoutMs: 1000, requestBudgetMs: 9000, warmupWaitMs: 1000 } })
      })
      expect(await db.query((c) => c.purchaseOrder.count())).toBe(0)
      await cluster.stop("fast")
      // the pool hears its connections die before the write is sent
      await sleep(300)
      const restarted = sleep(200).then(() => cluster.start())
      const reference = unique("before-send")
      let calls = 0
      const result = await settle(db.query((c) => {
        calls++
        return c.purchaseOrder.create({ data: { reference, totalCents: 1 } })
      }))
      await restarted
      expect(result.ok ? result.value.reference : result.failure).toBe(reference)
      expect(calls).toBeGreaterThanOrEqual(2)
      expect(await ordersLike(cluster.url, reference)).toBe(1)
    }, 60_000)

    describe("an attempt that timed out after the server committed", () => {
      let db: ReturnType<typeof own.open>
      beforeAll(() => {
        // One database for these cases: an abandoned attempt must find its
        // client still connected, as in a long-running service.
        db = own.open(binding, { url, settings: safetyOnly })
      })

      it("INSERT … RETURNING through $queryRaw is a write: TimeoutError, not retried, one row", async () => {
        const tag = unique("returning")
        const result = await settle(db.query(cases(table, tag).insertReturning))
        expect(result.ok ? "resolved" : result.failure._tag).toBe("TimeoutError")
        expect(await rowsLater(tag)).toBe(1)
      }, 30_000)

      it("a read and a write made together make a write: TimeoutError, one row", async () => {
        const tag = unique("together")
        const result = await settle(db.query(cases(table, tag).countThenInsertTogether))
        expect(result.ok ? "resolved" : result.failure._tag).toBe("TimeoutError")
        expect(await rowsLater(tag)).toBe(1)
      }, 30_000)

      it("read, then write after an await: the timed-out attempt is fenced, the retry writes once", async () => {
        const tag = unique("fenced")
        // Attempt 1 timed out during its read (safe to retry); its write, made
        // after the timeout, is refused; attempt 2 writes.
        const result = await settle(db.query(cases(table, tag).readThenWrite))
        expect(result.ok ? result.value : result.failure).toBe(1)
        expect(await rowsLater(tag)).toBe(1)
      }, 30_000)

      it("a slow read is retried and succeeds (the safe retry is not skipped)", async () => {
        const result = await settle(db.query(cases(table, "read").slowRead))
        expect(result.ok ? result.value[0]!.answer : result.failure).toBe(42)
      }, 30_000)
    })
  })

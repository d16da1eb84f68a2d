// The writer is the writer, and a replica serves only fresh reads. Which
// server answered is asked of the server itself (`inet_server_port()`), so
// no binding's metrics are needed: a multi-host string over two real servers
// (read-only by `default_transaction_read_only`, what
// `target_session_attrs=read-write` tests), and a streaming replica whose
// link to its primary the test cuts while orders are written.
import type { Cluster, StreamingReplica } from "@prisma-resilience/devdb"
import { startStreamingReplica } from "@prisma-resilience/devdb"
import { beforeAll, describe, expect, it } from "vitest"
import { multiHostUrl, setReadOnly, sharePassword } from "../../packages/core-effect3/test/support/nodes.js"
import { type Binding, type BoundDatabase, type Client, settle } from "../binding.js"
import { ordersLike, resources, settings, sleep, sql, unique, verdict } from "./support.js"

const MAX_LAG_MS = 1000
const FAULT_MS = 3000
const WRITE_EVERY_MS = 100
const READ_EVERY_MS = 100

/** the port of the server that ran the read, and the orders it saw */
const readOrders = (prefix: string) => (c: Client) =>
  Promise.all([
    c.$queryRaw<Array<{ port: number }>>`SELECT inet_server_port() AS port`,
    c.purchaseOrder.findMany({ where: { reference: { startsWith: prefix } }, select: { reference: true } })
  ]).then(([[server], rows]) => ({ port: Number(server!.port), references: rows.map((row) => row.reference) }))

export const describeTopology = (binding: Binding) =>
  describe(`topology (${binding.name})`, () => {
    const own = resources()

    it("a multi-host URL reaches the writer, follows it when it changes, and health fails when no node takes writes", async () => {
      const [a, b] = await Promise.all([own.cluster(), own.cluster()])
      const bUrl = await sharePassword(a, b)
      // A (listed first) refuses writes: the write must land on B.
      await setReadOnly(a.url, true)
      const db = own.open(binding, { url: multiHostUrl(a, b), settings: settings({ topology: { nodeCheckIntervalMs: 200 } }) })
      const prefix = unique("topology")
      const create = (reference: string) => db.query((c) => c.purchaseOrder.create({ data: { reference, totalCents: 100 } }))
      await create(`${prefix}-warm`)
      expect([await ordersLike(a.url, prefix), await ordersLike(bUrl, prefix)]).toEqual([0, 1])
      expect(await verdict(db)).toBe("pass")

      // B is demoted and A takes writes: concurrent writes all land on A.
      await setReadOnly(a.url, false)
      await setReadOnly(bUrl, true)
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => settle(create(`${prefix}-moved-${i}`))))
      expect(results.flatMap((r) => (r.ok ? [] : [`${r.failure._tag}: ${r.failure.message}`]))).toEqual([])
      expect([await ordersLike(a.url, `${prefix}-moved-`), await ordersLike(bUrl, `${prefix}-moved-`)]).toEqual([6, 0])

      // Neither takes writes: health says so instead of passing on SELECT 1
      // (asked until the backends have applied the reloaded setting).
      await setReadOnly(a.url, true)
      let reason = await verdict(db)
      for (const until = Date.now() + 3000; reason === "pass" && Date.now() < until;) {
        await sleep(100)
        reason = await verdict(db)
      }
      expect(reason).toBe("read_only")
    }, 60_000)

    describe("a streaming replica", () => {
      let primary: Cluster
      let replica: StreamingReplica
      let db: BoundDatabase
      // released in reverse: the database, the replica, its primary
      const mine = resources()
      beforeAll(async () => {
        primary = await mine.cluster()
        replica = mine.own(await startStreamingReplica(primary), (r) => r.destroy())
        db = mine.open(binding, {
          url: primary.url,
          replicaUrls: [replica.cluster.url],
          settings: settings({ topology: { nodeCheckIntervalMs: 200, replicaMaxLagMs: MAX_LAG_MS } })
        })
      }, 120_000)

      /** opted-in reads until one is served by the replica: what it saw and when it was sent, or undefined after `timeoutMs` */
      const untilReplicaServes = async (prefix: string, timeoutMs: number) => {
        for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(100)) {
          const sentAt = Date.now()
          const read = await db.query(readOrders(prefix), { replica: true })
          if (read.port === replica.cluster.port) return { ...read, sentAt }
        }
        return undefined
      }

      it("serves opted-in reads while fresh, none that miss acknowledged orders once cut off, and again once caught up", async () => {
        const prefix = unique("replica")
        const acks: Array<{ reference: string; at: number }> = []
        const insert = async (reference: string) => {
          await sql(primary.url, "INSERT INTO purchase_order (id, reference, total_cents) VALUES (gen_random_uuid(), $1, 1)", [reference])
          acks.push({ reference, at: Date.now() })
        }
        await insert(`${prefix}-before`)
        const fresh = await untilReplicaServes(prefix, 15_000)
        expect(fresh, "the replica takes opted-in reads while its link is up").toBeDefined()
        // a read that is never routed there: written and read back on the writer
        expect((await db.query(readOrders(prefix))).port).toBe(primary.port)

        replica.cut()
        const faultAt = Date.now()
        const writing = (async () => {
          for (let n = 0; Date.now() - faultAt < FAULT_MS; n++) {
            await insert(`${prefix}-${n}`)
            await sleep(WRITE_EVERY_MS)
          }
        })()
        const reads: Array<{ port: number; due: number; missing: Array<string> }> = []
        while (Date.now() - faultAt < FAULT_MS) {
          const sentAt = Date.now()
          const due = acks.filter((ack) => ack.at < sentAt - MAX_LAG_MS)
          const read = await db.query(readOrders(prefix), { replica: true })
          const seen = new Set(read.references)
          reads.push({ port: read.port, due: due.length, missing: due.filter((ack) => !seen.has(ack.reference)).map((ack) => ack.reference) })
          await sleep(READ_EVERY_MS)
        }
        await writing
        const late = reads.filter((read) => read.due > 1)
        console.info(
          `[behaviour] ${binding.name}: replica cut off: ${reads.length} opted-in reads, ` +
            `${reads.filter((r) => r.port === replica.cluster.port).length} served by the replica, ${late.length} with orders due`
        )
        expect(reads.filter((read) => read.missing.length > 0), "reads that missed orders acknowledged more than the lag limit earlier").toEqual([])
        expect(late.length, "reads sent more than the lag limit after the fault began").toBeGreaterThanOrEqual(5)
        // once the writer has moved on by more than the limit, the writer serves them
        expect(reads.at(-1)!.port).toBe(primary.port)

        replica.restore()
        const back = await untilReplicaServes(prefix, 30_000)
        expect(back, "the replica serves opted-in reads again once the link is back").toBeDefined()
        const seen = new Set(back!.references)
        const due = acks.filter((ack) => ack.at < back!.sentAt - MAX_LAG_MS)
        expect(due.filter((ack) => !seen.has(ack.reference)), "what the restored replica's first read missed").toEqual([])
      }, 90_000)
    })
  })

// classify against errors captured from Prisma 7 + adapter-pg and a real server,
// for each fault the taxonomy names.
import { classify, type DatabaseError } from "@prisma-resilience/core"
import { freePort, startProxy, type TcpProxy } from "@prisma-resilience/devdb"
import { makePrismaClient, type PrismaClient } from "../../../core-effect3/test/fixture/client.js"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { inject } from "vitest"

const url = inject("databaseUrl")
const withPort = (port: number, password?: string) => {
  const u = new URL(url)
  u.port = String(port)
  if (password !== undefined) u.password = password
  return u.toString()
}

const capture = (promise: PromiseLike<unknown>): Promise<unknown> =>
  Promise.resolve(promise).then(
    () => {
      throw new Error("expected the call to fail")
    },
    (error: unknown) => error
  )

const deferred = () => {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

const expectClass = (error: DatabaseError, tag: DatabaseError["_tag"], safety: DatabaseError["safety"]) => {
  console.info(`[core] real error → ${error._tag} ${error.safety} code=${error.code}: ${error.message}`)
  expect({ tag: error._tag, safety: error.safety }).toEqual({ tag, safety })
}

describe("classify on real Prisma 7 errors", () => {
  let prisma: PrismaClient
  let admin: pg.Client
  let proxy: TcpProxy | undefined
  const clients: Array<PrismaClient> = []
  const client = (u: string) => {
    const c = makePrismaClient(u, { max: 4, connectionTimeoutMillis: 2000 })
    clients.push(c)
    return c
  }
  const newOrder = (reference: string) =>
    prisma.purchaseOrder.create({ data: { reference: `${reference}-${process.pid}-${Math.random()}`, totalCents: 0 } })

  beforeAll(async () => {
    prisma = client(url)
    admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
    admin.on("error", () => {})
    await admin.connect()
  })

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.$disconnect()))
    await admin?.end()
    await proxy?.close()
  })

  it("unreachable port → ConnectionError, before-send", async () => {
    const error = await capture(client(withPort(await freePort())).purchaseOrder.findMany())
    expectClass(classify(error), "ConnectionError", "before-send")
  })

  it("wrong password → QueryError, never retried", async () => {
    const error = await capture(client(withPort(Number(new URL(url).port), "not-the-password")).purchaseOrder.findMany())
    expectClass(classify(error), "QueryError", "never")
  })

  it("backend terminated mid-query (pg_terminate_backend) → ConnectionError, ambiguous", async () => {
    const marker = `terminate_me_${process.pid}`
    const running = capture(prisma.$queryRawUnsafe(`SELECT pg_sleep(5) AS ${marker}`))
    for (let i = 0; i < 50; i++) {
      const { rows } = await admin.query(
        "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
        [`%AS ${marker}%`]
      )
      if (rows.length > 0) break
      await new Promise((r) => setTimeout(r, 50))
    }
    expectClass(classify(await running), "ConnectionError", "ambiguous")
  })

  it("connection cut at the TCP level mid-query → ConnectionError, ambiguous", async () => {
    proxy = await startProxy({ host: "127.0.0.1", port: Number(new URL(url).port) })
    const viaProxy = client(withPort(proxy.port))
    await viaProxy.$queryRaw`SELECT 1`
    const running = capture(viaProxy.$queryRaw`SELECT pg_sleep(3)`)
    await new Promise((r) => setTimeout(r, 200))
    proxy.cutAll()
    expectClass(classify(await running), "ConnectionError", "ambiguous")
  })

  it("serialization failure (40001) → TransactionError", async () => {
    const order = await newOrder("serial")
    const read = deferred()
    const committed = deferred()
    const tx = capture(prisma.$transaction(async (t) => {
      await t.purchaseOrder.findUniqueOrThrow({ where: { id: order.id } })
      read.resolve()
      await committed.promise
      await t.purchaseOrder.update({ where: { id: order.id }, data: { totalCents: 2 } })
    }, { isolationLevel: "Serializable" }))
    await read.promise
    await admin.query("UPDATE purchase_order SET total_cents = 1 WHERE id = $1", [order.id])
    committed.resolve()
    expectClass(classify(await tx), "TransactionError", "transaction")
  })

  it("serialization failure on a raw query (P2010 with SQLSTATE) → TransactionError", async () => {
    const order = await newOrder("serial-raw")
    const read = deferred()
    const committed = deferred()
    const tx = capture(prisma.$transaction(async (t) => {
      await t.$queryRaw`SELECT total_cents FROM purchase_order WHERE id = ${order.id}::uuid`
      read.resolve()
      await committed.promise
      await t.$executeRaw`UPDATE purchase_order SET total_cents = 2 WHERE id = ${order.id}::uuid`
    }, { isolationLevel: "RepeatableRead" }))
    await read.promise
    await admin.query("UPDATE purchase_order SET total_cents = 1 WHERE id = $1", [order.id])
    committed.resolve()
    expectClass(classify(await tx), "TransactionError", "transaction")
  })

  it("deadlock (40P01) → TransactionError", async () => {
    const [a, b] = [await newOrder("dl-a"), await newOrder("dl-b")]
    const lockedA = deferred()
    const lockedB = deferred()
    const lockAndCross = (first: string, second: string, mine: { resolve: () => void }, other: Promise<void>) =>
      capture(prisma.$transaction(async (t) => {
        await t.$executeRaw`UPDATE purchase_order SET total_cents = total_cents + 1 WHERE id = ${first}::uuid`
        mine.resolve()
        await other
        await t.$executeRaw`UPDATE purchase_order SET total_cents = total_cents + 1 WHERE id = ${second}::uuid`
      }, { timeout: 10_000 })).catch((e) => e)
    const results = await Promise.allSettled([
      lockAndCross(a.id, b.id, lockedA, lockedB.promise),
      lockAndCross(b.id, a.id, lockedB, lockedA.promise)
    ])
    // One of the two is chosen as the deadlock victim; the other commits.
    const errors = results
      .map((r) => (r.status === "fulfilled" ? r.value : r.reason))
      .filter((e) => !(e instanceof Error && e.message === "expected the call to fail"))
    expect(errors.length).toBe(1)
    expectClass(classify(errors[0]), "TransactionError", "transaction")
  })

  it("a write on a read-only node (25006, a demoted primary or a standby) → ConnectionError, before-send", async () => {
    // What a write meets on a node in recovery, reproduced with a read-only session.
    const readOnly = new URL(url)
    readOnly.searchParams.set("options", "-c default_transaction_read_only=on")
    const replicaLike = client(readOnly.toString())
    const model = classify(await capture(replicaLike.purchaseOrder.create({ data: { reference: `ro-${process.pid}`, totalCents: 0 } })))
    expectClass(model, "ConnectionError", "before-send")
    expect(model.code).toBe("25006")
    const raw = classify(await capture(replicaLike.$executeRawUnsafe(`CREATE TABLE ro_${process.pid} (id int)`)))
    expectClass(raw, "ConnectionError", "before-send")
    expect(raw.code).toBe("25006")
  })

  it("unique violation → QueryError P2002, never retried", async () => {
    const order = await newOrder("uniq")
    const error = await capture(prisma.purchaseOrder.create({ data: { reference: order.reference, totalCents: 0 } }))
    const classified = classify(error)
    expectClass(classified, "QueryError", "never")
    expect(classified.code).toBe("P2002")
  })

  it("statement timeout (57014) → TimeoutError, ambiguous", async () => {
    const error = await capture(prisma.$transaction(async (t) => {
      await t.$executeRaw`SET LOCAL statement_timeout = 100`
      await t.$queryRaw`SELECT pg_sleep(2)`
    }))
    const classified = classify(error)
    expectClass(classified, "TimeoutError", "ambiguous")
    expect(classified.code).toBe("57014")
  })

  it("missing table → QueryError, never retried", async () => {
    const error = await capture(prisma.$queryRaw`SELECT * FROM no_such_table`)
    const classified = classify(error)
    expectClass(classified, "QueryError", "never")
    expect(classified.code).toBe("42P01")
  })
})

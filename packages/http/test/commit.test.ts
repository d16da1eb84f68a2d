// A POST whose COMMIT was cut: the service asks PostgreSQL what happened
// instead of answering 503 (the real server in-process, a real embedded
// PostgreSQL behind the fault proxy, which cuts exactly at COMMIT).
import { type Cluster, startProxy, type TcpProxy } from "@prisma-resilience/devdb"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, type RunningServer, sql, startDatabase, startServer, urlVia } from "./support.js"

let cluster: Cluster
let proxy: TcpProxy
let server: RunningServer

beforeAll(async () => {
  cluster = await startDatabase()
  proxy = await startProxy(cluster)
  server = await startServer(urlVia(cluster, proxy.port), { DB_RETRY_DELAYS_MS: "100,200" })
  await eventually(async () => (await fetch(`${server.baseUrl}/health`)).status === 200)
})

afterAll(async () => {
  await server?.stop()
  await proxy?.close()
  await cluster?.destroy()
})

const post = async (body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(`${server.baseUrl}/purchase-orders`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })
  return { status: response.status, body: (await response.json()) as { readonly id: string } }
}

/** The armed cut, failing fast when no COMMIT was sent at all. */
const cutDone = (cut: Promise<void>) =>
  Promise.race([
    cut,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no COMMIT was cut within 5 s")), 5000))
  ])

const stored = (reference: string) =>
  sql<{ id: string }>(cluster, "SELECT id FROM purchase_order WHERE reference = $1", [reference])

const verified = async (outcome: string) => {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text()
  const line = new RegExp(`^db_commit_verifications_total\\{(?=[^}]*operation="purchaseOrder\\.create")(?=[^}]*outcome="${outcome}")[^}]*\\} (\\d+)$`, "m")
  return Number(text.match(line)?.[1] ?? 0)
}

describe("POST /purchase-orders with its COMMIT cut", () => {
  it("answers 201 when the order committed, with the order the insert returned, stored once", async () => {
    const before = await verified("committed")
    const cut = proxy.cutOnCommit("after")
    const body = { reference: "PO-COMMIT-CUT-1", totalCents: 4200 }
    const response = await post(body)
    await cutDone(cut)
    expect(proxy.commitCuts).toBe(1)
    expect(response.status).toBe(201)
    expect(response.body).toMatchObject(body)
    expect((await stored(body.reference)).map((row) => row.id)).toEqual([response.body.id])
    expect(await verified("committed")).toBe(before + 1)
    expect(server.logs.some((line) => /purchaseOrder\.create attempt 1\/3 failed: ConnectionError: .*says committed: it succeeded/.test(line)))
      .toBe(true)
  })

  it("inserts again when the COMMIT never reached the server: 201, one row", async () => {
    const before = await verified("aborted")
    const cut = proxy.cutOnCommit("before")
    const body = { reference: "PO-COMMIT-CUT-2", totalCents: 4300 }
    const response = await post(body)
    await cutDone(cut)
    expect(response.status).toBe(201)
    expect((await stored(body.reference)).map((row) => row.id)).toEqual([response.body.id])
    expect(await verified("aborted")).toBe(before + 1)
  })

  it("with an Idempotency-Key: 201 once, and the same order on a replay", async () => {
    const cut = proxy.cutOnCommit("after")
    const body = { reference: "PO-COMMIT-CUT-3", totalCents: 4400 }
    const first = await post(body, { "idempotency-key": "commit-cut-3" })
    await cutDone(cut)
    const replay = await post(body, { "idempotency-key": "commit-cut-3" })
    expect(first.status).toBe(201)
    expect(replay.status).toBe(201)
    expect(replay.body).toEqual(first.body)
    expect(await stored(body.reference)).toHaveLength(1)
  })
})

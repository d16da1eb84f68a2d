// The web handler (Request → Promise<Response>) runs the same app: called
// directly, no server involved.
import type { Cluster } from "@prisma-resilience/devdb"
import { Redacted } from "effect"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as WebHandler from "../src/WebHandler.js"
import { eventually, startDatabase } from "./support.js"

let cluster: Cluster
let web: WebHandler.WebHandler

beforeAll(async () => {
  cluster = await startDatabase()
  web = WebHandler.make({ databaseUrl: Redacted.make(cluster.url) })
})

afterAll(async () => {
  await web?.dispose()
  await cluster?.destroy()
})

const request = (path: string, init?: RequestInit) => web.handler(new Request(`http://service.test${path}`, init))

it("serves health, purchase orders, errors and metrics", async () => {
  await eventually(async () => (await request("/health")).status === 200)

  const created = await request("/purchase-orders", {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": "web-1" },
    body: JSON.stringify({ reference: "PO-WEB-1", totalCents: 42 })
  })
  expect(created.status).toBe(201)
  const order = (await created.json()) as { id: string }
  expect(order).toMatchObject({ reference: "PO-WEB-1", totalCents: 42, note: null })

  const read = await request(`/purchase-orders/${order.id}`)
  expect(read.status).toBe(200)
  expect(await read.json()).toEqual(order)

  const invalid = await request("/purchase-orders", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ reference: "PO-WEB-2", totalCents: -1 })
  })
  expect(invalid.status).toBe(400)
  expect(((await invalid.json()) as { issues: Array<{ path: unknown }> }).issues[0]!.path).toEqual(["totalCents"])

  const missing = await request("/nowhere")
  expect(missing.status).toBe(404)
  expect(((await missing.json()) as { _tag: string })._tag).toBe("RouteNotFound")

  const metrics = await request("/metrics")
  expect(await metrics.text()).toMatch(/^db_query_attempts_total\{operation="purchaseOrder\.create",attempt="1",outcome="success"\} \d+$/m)
})

// examples/basic.ts, the README's "use it in your program", runs against a
// real database.
import type { Cluster } from "@prisma-resilience/devdb"
import { ConfigProvider, Effect } from "effect"
import { afterAll, beforeAll, expect, it } from "vitest"
import { main } from "../../../examples/basic.js"
import { startDatabase } from "./support.js"

let cluster: Cluster

beforeAll(async () => {
  cluster = await startDatabase()
})

afterAll(async () => {
  await cluster?.destroy()
})

it("runs health, a query and a transaction through its own Database layer", async () => {
  const result = await main.pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", cluster.url]]))),
    Effect.runPromise
  )
  expect(result.report.status).toBe("pass")
  expect(result.order).toMatchObject({ totalCents: 9000, note: "10 % off" })
  expect(result.count).toBe(1)
})

// createResilientPrisma's configuration is read and checked at creation, from
// the DB_* variables under the options: no database involved.
import { createResilientPrisma, type PrismaClientLike, RetryConfigError } from "@prisma-resilience/core"
import { afterEach, describe, expect, it } from "vitest"

const unusedClient = (): PrismaClientLike => {
  throw new Error("no client may be built when the configuration is invalid")
}

const fakeClient = (): PrismaClientLike => ({
  $connect: () => Promise.resolve(),
  $disconnect: () => Promise.resolve(),
  $queryRaw: () => Promise.resolve([{ "?column?": 1 }]),
  $transaction: () => Promise.reject(new Error("not used"))
})

const saved = { ...process.env }
afterEach(() => {
  for (const name of Object.keys(process.env)) {
    if (name.startsWith("DB_")) {
      if (name in saved) process.env[name] = saved[name]
      else delete process.env[name]
    }
  }
})

describe("createResilientPrisma configuration", () => {
  it("a retry policy that cannot fit its budget throws RetryConfigError with the arithmetic at creation", () => {
    let thrown: unknown
    try {
      createResilientPrisma({ client: unusedClient, retry: { attemptTimeoutMs: 3000 } })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(RetryConfigError)
    expect((thrown as RetryConfigError).message).toContain(
      "1500 ms warm-up wait + 3 attempts × 3000 ms + delays 500 + 1000 ms = 12000 ms > DB_REQUEST_BUDGET_MS 9000 ms"
    )
  })

  it("settings not given come from the DB_* variables; options given win", async () => {
    process.env.DB_REQUEST_BUDGET_MS = "4000"
    expect(() => createResilientPrisma({ client: unusedClient })).toThrow(
      "1500 ms warm-up wait + 3 attempts × 2000 ms + delays 500 + 1000 ms = 9000 ms > DB_REQUEST_BUDGET_MS 4000 ms"
    )
    const db = createResilientPrisma({ client: fakeClient, retry: { requestBudgetMs: 9000 } })
    expect((await db.$ready()).attempts).toBe(1)
    await db.$disconnect()
  })

  it("an invalid DB_* value throws an Error naming the variable", () => {
    process.env.DB_POOL_MAX = "many"
    expect(() => createResilientPrisma({ client: unusedClient })).toThrow(
      /^invalid database configuration: .*DB_POOL_MAX/
    )
  })
})

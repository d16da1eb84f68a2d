// createResilientPrisma's configuration is read and checked at creation, from
// the DB_* variables under the options: no database involved.
import {
  CircuitOpenError,
  ConnectionError,
  createResilientPrisma,
  type PrismaClientLike,
  QueryError,
  RetryConfigError,
  TimeoutError
} from "@prisma-resilience/core"
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

// The call path itself, against a fake client: what a Promise caller sees.
describe("createResilientPrisma calls", () => {
  const refused = () => Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })
  // Lazy like a Prisma promise: `send` runs on the first `then`.
  const clientWith = (send: () => Promise<unknown>) => () => ({
    ...fakeClient(),
    order: {
      findUnique: () => ({
        [Symbol.toStringTag]: "PrismaPromise",
        then: (onfulfilled?: (value: unknown) => unknown, onrejected?: (reason: unknown) => unknown) =>
          send().then(onfulfilled, onrejected)
      })
    }
  })
  const options = { retry: { delaysMs: [1, 1] } }

  it("a model call resolves with the client's value", async () => {
    const db = createResilientPrisma({ client: clientWith(() => Promise.resolve({ id: 1 })), ...options })
    await expect(db.order.findUnique()).resolves.toEqual({ id: 1 })
    await db.$disconnect()
  })

  it("a before-send failure is retried and the call resolves with the value of attempt 2", async () => {
    let calls = 0
    const db = createResilientPrisma({
      client: clientWith(() => ++calls === 1 ? Promise.reject(refused()) : Promise.resolve({ id: 2 })),
      ...options
    })
    await expect(db.order.findUnique()).resolves.toEqual({ id: 2 })
    expect(calls).toBe(2)
    await db.$disconnect()
  })

  it("a failure the layer gives up on rejects with the typed error itself, after every attempt", async () => {
    let calls = 0
    const db = createResilientPrisma({
      client: clientWith(() => {
        calls += 1
        return Promise.reject(refused())
      }),
      ...options
    })
    const error = await db.order.findUnique().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionError)
    expect(error).toMatchObject({ operation: "order.findUnique", attempt: 3 })
    expect(calls).toBe(3)
    await db.$disconnect()
  })

  it("a non-retryable failure rejects with QueryError on attempt 1", async () => {
    let calls = 0
    const unique = Object.assign(new Error("Unique constraint failed"), { code: "P2002", clientVersion: "7" })
    const db = createResilientPrisma({
      client: clientWith(() => {
        calls += 1
        return Promise.reject(unique)
      }),
      ...options
    })
    const error = await db.order.findUnique().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(QueryError)
    expect(error).toMatchObject({ code: "P2002", attempt: 1 })
    expect(calls).toBe(1)
    await db.$disconnect()
  })

  it("an attempt that never settles rejects with TimeoutError once the attempts are used up", async () => {
    let calls = 0
    const db = createResilientPrisma({
      client: clientWith(() => {
        calls += 1
        return new Promise(() => {})
      }),
      retry: { delaysMs: [1, 1], attemptTimeoutMs: 50 },
      serverTimeouts: { marginMs: 10 }
    })
    const error = await db.order.findUnique().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toMatchObject({ code: "ATTEMPT_TIMEOUT", attempt: 3 })
    expect(calls).toBe(3)
    await db.$disconnect()
  })

  it("an open circuit rejects with CircuitOpenError without sending the query", async () => {
    let calls = 0
    const db = createResilientPrisma({
      client: clientWith(() => {
        calls += 1
        return Promise.reject(refused())
      }),
      retry: { delaysMs: [] },
      circuitBreaker: { failureThreshold: 2, resetTimeoutMs: 60_000 }
    })
    for (let i = 0; i < 2; i++) await db.order.findUnique().then(() => undefined, () => undefined)
    const error = await db.order.findUnique().then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(CircuitOpenError)
    expect(calls).toBe(2)
    await db.$disconnect()
  })
})

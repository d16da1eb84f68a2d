// createResilientPrisma's configuration is read and checked at creation, from
// the DB_* variables under the options: no database involved.
import {
  CircuitOpenError,
  ConnectionError,
  createResilientPrisma,
  type PrismaClientLike,
  classificationOf,
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

// The fake clients connect nowhere; a URL is still required, as DATABASE_URL is of a real app.
const fakeUrl = "postgresql://app@127.0.0.1:5432/app"

const saved = { ...process.env }
afterEach(() => {
  for (const name of Object.keys(process.env)) {
    if (name.startsWith("DB_") || name.startsWith("DATABASE_")) {
      if (name in saved) process.env[name] = saved[name]
      else delete process.env[name]
    }
  }
})

describe("createResilientPrisma configuration", () => {
  it("a retry policy that cannot fit its budget throws RetryConfigError with the arithmetic at creation", () => {
    let thrown: unknown
    try {
      createResilientPrisma({ url: fakeUrl, client: unusedClient, retry: { attemptTimeoutMs: 3000 } })
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
    expect(() => createResilientPrisma({ url: fakeUrl, client: unusedClient })).toThrow(
      "1500 ms warm-up wait + 3 attempts × 2000 ms + delays 500 + 1000 ms = 9000 ms > DB_REQUEST_BUDGET_MS 4000 ms"
    )
    const db = createResilientPrisma({ url: fakeUrl, client: fakeClient, retry: { requestBudgetMs: 9000 } })
    expect((await db.$ready()).attempts).toBe(1)
    await db.$disconnect()
  })

  it("without DATABASE_URL or `url`: throws at once, naming DATABASE_URL, instead of warming up against pg's default", () => {
    delete process.env.DATABASE_URL
    expect(() => createResilientPrisma({ client: unusedClient })).toThrow(RetryConfigError)
    expect(() => createResilientPrisma({ client: unusedClient })).toThrow(/DATABASE_URL is not set/)
  })

  it("DATABASE_URL is read by default and reaches the factory as pool.connectionString; `url` wins over it", async () => {
    const seen: Array<string | undefined> = []
    const recording = (pool: { connectionString?: string }) => {
      seen.push(pool.connectionString)
      return fakeClient()
    }
    process.env.DATABASE_URL = "postgresql://app@127.0.0.1:5433/from_env"
    const fromEnv = createResilientPrisma({ client: recording })
    await fromEnv.$ready()
    await fromEnv.$disconnect()
    const given = createResilientPrisma({ client: recording, url: "postgresql://app@127.0.0.1:5434/given" })
    await given.$ready()
    await given.$disconnect()
    expect(seen).toEqual(["postgresql://app@127.0.0.1:5433/from_env", "postgresql://app@127.0.0.1:5434/given"])
  })

  it("an invalid DATABASE_URL or DATABASE_REPLICA_URLS throws at creation, naming the variable, never the string", () => {
    process.env.DATABASE_URL = "mysql://app:s3cret@127.0.0.1/app"
    expect(() => createResilientPrisma({ client: unusedClient })).toThrow(/invalid connection string in DATABASE_URL/)
    try {
      createResilientPrisma({ client: unusedClient })
    } catch (error) {
      expect(String((error as Error).message)).not.toContain("s3cret")
    }
    process.env.DATABASE_URL = fakeUrl
    process.env.DATABASE_REPLICA_URLS = "postgresql://app:s3cret@127.0.0.1:99999/app"
    expect(() => createResilientPrisma({ client: unusedClient })).toThrow(/invalid connection string in DATABASE_REPLICA_URLS/)
  })

  it("an invalid DB_* value throws an Error naming the variable", () => {
    process.env.DB_POOL_MAX = "many"
    expect(() => createResilientPrisma({ url: fakeUrl, client: unusedClient })).toThrow(
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
    const db = createResilientPrisma({ url: fakeUrl, client: clientWith(() => Promise.resolve({ id: 1 })), ...options })
    await expect(db.order.findUnique()).resolves.toEqual({ id: 1 })
    await db.$disconnect()
  })

  it("a before-send failure is retried and the call resolves with the value of attempt 2", async () => {
    let calls = 0
    const db = createResilientPrisma({
      url: fakeUrl,
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
      url: fakeUrl,
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
      url: fakeUrl,
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

  it("a non-retryable Prisma error rejects as itself, its QueryError readable through classificationOf", async () => {
    class PrismaClientKnownRequestError extends Error {
      override name = "PrismaClientKnownRequestError"
      code = "P2002"
      meta = { target: ["reference"] }
      clientVersion = "7"
    }
    const unique = new PrismaClientKnownRequestError("Unique constraint failed")
    const db = createResilientPrisma({ url: fakeUrl, client: clientWith(() => Promise.reject(unique)), ...options })
    const error = await db.order.findUnique().then(() => undefined, (e: unknown) => e)
    expect(error).toBe(unique)
    expect(classificationOf(error)).toBeInstanceOf(QueryError)
    expect(classificationOf(error)).toMatchObject({ code: "P2002", attempt: 1, safety: "never", cause: unique })
    await db.$disconnect()
  })

  it("an attempt that never settles rejects with TimeoutError once the attempts are used up", async () => {
    let calls = 0
    const db = createResilientPrisma({
      url: fakeUrl,
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
      url: fakeUrl,
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

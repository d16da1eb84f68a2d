import { classify, type DatabaseError, isRetryable, type RetrySafety } from "@prisma-resilience/core"
import {
  PrismaClientInitializationError,
  PrismaClientKnownRequestError,
  PrismaClientUnknownRequestError
} from "@prisma/client/runtime/client"
import { describe, expect, it } from "vitest"

const clientVersion = "7.10.0"

/** The shape Prisma 7 gives a failed raw query: P2010 with the adapter error in meta. */
const adapterError = (cause: Record<string, unknown>, code = "P2010") =>
  new PrismaClientKnownRequestError(`Raw query failed. Code: \`${String(cause.code ?? cause.kind)}\``, {
    code,
    clientVersion,
    meta: { driverAdapterError: Object.assign(new Error(String(cause.kind)), { name: "DriverAdapterError", cause }) }
  })

const postgres = (state: string) =>
  adapterError({ kind: "postgres", code: state, originalCode: state, severity: "ERROR", message: `sqlstate ${state}` })

const known = (code: string, message = `prisma error ${code}`) =>
  new PrismaClientKnownRequestError(message, { code, clientVersion })

const errno = (code: string, message: string) => Object.assign(new Error(message), { code })

type Row = readonly [name: string, error: unknown, tag: DatabaseError["_tag"], safety: RetrySafety, code?: string]

const table: ReadonlyArray<Row> = [
  // Prisma 7 driver-adapter kinds
  ["adapter DatabaseNotReachable", adapterError({ kind: "DatabaseNotReachable", host: "127.0.0.1", port: 1 }, "P1001"), "ConnectionError", "before-send", "DatabaseNotReachable"],
  ["adapter TooManyConnections", adapterError({ kind: "TooManyConnections", cause: "too many" }, "P2037"), "ConnectionError", "before-send", "TooManyConnections"],
  ["adapter ConnectionClosed", adapterError({ kind: "ConnectionClosed" }, "P1017"), "ConnectionError", "ambiguous", "ConnectionClosed"],
  ["adapter SocketTimeout", adapterError({ kind: "SocketTimeout" }, "P1008"), "TimeoutError", "ambiguous", "SocketTimeout"],
  ["adapter TransactionWriteConflict", adapterError({ kind: "TransactionWriteConflict" }, "P2034"), "TransactionError", "transaction", "TransactionWriteConflict"],
  ["adapter TransactionAlreadyClosed", adapterError({ kind: "TransactionAlreadyClosed", cause: "closed" }, "P2028"), "TransactionError", "transaction", "TransactionAlreadyClosed"],
  ["adapter UniqueConstraintViolation", adapterError({ kind: "UniqueConstraintViolation", constraint: { fields: ["reference"] } }, "P2002"), "QueryError", "never", "P2002"],
  ["adapter AuthenticationFailed", adapterError({ kind: "AuthenticationFailed", user: "app" }, "P1000"), "QueryError", "never", "P1000"],
  ["adapter TableDoesNotExist", adapterError({ kind: "TableDoesNotExist", table: "x" }, "P2021"), "QueryError", "never", "P2021"],
  // PostgreSQL SQLSTATE through the adapter's postgres kind
  ...(["08000", "08003", "08006", "08007", "57P01", "57P02", "57P05"] as const).map(
    (s): Row => [`SQLSTATE ${s}`, postgres(s), "ConnectionError", "ambiguous", s]
  ),
  ...(["08001", "08004", "57P03", "53300", "25006"] as const).map(
    (s): Row => [`SQLSTATE ${s}`, postgres(s), "ConnectionError", "before-send", s]
  ),
  ["SQLSTATE 40001", postgres("40001"), "TransactionError", "transaction", "40001"],
  ["SQLSTATE 40P01", postgres("40P01"), "TransactionError", "transaction", "40P01"],
  ["SQLSTATE 57014", postgres("57014"), "TimeoutError", "ambiguous", "57014"],
  ["SQLSTATE 55P03", postgres("55P03"), "TimeoutError", "ambiguous", "55P03"],
  ...(["53000", "53100", "53200", "53400", "58000", "58030"] as const).map(
    (s): Row => [`SQLSTATE ${s}`, postgres(s), "ConnectionError", "ambiguous", s]
  ),
  ["SQLSTATE 55006", postgres("55006"), "TransactionError", "ambiguous", "55006"],
  ["SQLSTATE 23505 unique violation", postgres("23505"), "QueryError", "never", "23505"],
  ["SQLSTATE 42P01 missing table", postgres("42P01"), "QueryError", "never", "42P01"],
  // Prisma 5/6 P2010 with the SQLSTATE in meta.code
  ["Prisma 6 P2010 meta.code 40001", new PrismaClientKnownRequestError("Raw query failed", { code: "P2010", clientVersion, meta: { code: "40001", message: "could not serialize" } }), "TransactionError", "transaction", "40001"],
  // Prisma codes
  ["P1001 can't reach", known("P1001", "Can't reach database server at `127.0.0.1:1`"), "ConnectionError", "before-send", "P1001"],
  ["P1002 server timed out", known("P1002"), "TimeoutError", "ambiguous", "P1002"],
  ["P1008 operations timed out", known("P1008"), "TimeoutError", "ambiguous", "P1008"],
  ["P1017 server closed", known("P1017"), "ConnectionError", "ambiguous", "P1017"],
  ["P2024 pool timeout", known("P2024", "Timed out fetching a new connection from the connection pool."), "TimeoutError", "before-send", "P2024"],
  ["P2028 transaction API", known("P2028", "Transaction API error: Transaction already closed"), "TransactionError", "transaction", "P2028"],
  ["P2034 write conflict", known("P2034"), "TransactionError", "transaction", "P2034"],
  ["P2037 too many connections", known("P2037"), "ConnectionError", "before-send", "P2037"],
  ["P2002 unique", known("P2002"), "QueryError", "never", "P2002"],
  ["P2025 not found", known("P2025"), "QueryError", "never", "P2025"],
  ["P1000 auth", known("P1000"), "QueryError", "never", "P1000"],
  // Prisma 5/6 engine messages
  ["Engine is not yet connected", new PrismaClientUnknownRequestError("Engine is not yet connected.", { clientVersion }), "ConnectionError", "before-send"],
  ["initialization: can't reach", new PrismaClientInitializationError("Can't reach database server at `db:5432`", clientVersion), "ConnectionError", "before-send"],
  ["Response from the Engine was empty", new PrismaClientUnknownRequestError("Response from the Engine was empty", { clientVersion }), "EmptyResponseError", "ambiguous"],
  ["Timed out fetching a new connection (message)", new Error("Timed out fetching a new connection from the connection pool. (Current connection pool timeout: 10, connection limit: 5)"), "TimeoutError", "before-send"],
  // PgBouncer's own errors arrive as SQLSTATE 08P01 (message from a real PgBouncer 1.18 in transaction mode)
  ["PgBouncer: server login failing", new PrismaClientKnownRequestError("Database error. Code: `08P01`. Message: `server login has been failing, try again later (server_login_retry)`", { code: "P2039", clientVersion, meta: { driverAdapterError: Object.assign(new Error("postgres"), { name: "DriverAdapterError", cause: { kind: "postgres", code: "08P01", originalCode: "08P01", severity: "FATAL", message: "server login has been failing, try again later (server_login_retry)" } }) } }), "ConnectionError", "before-send"],
  ["PgBouncer: query_wait_timeout", errno("08P01", "query_wait_timeout"), "ConnectionError", "before-send"],
  ["PgBouncer: server conn crashed", errno("08P01", "server conn crashed?"), "ConnectionError", "ambiguous"],
  ["08P01 from PostgreSQL itself", postgres("08P01"), "QueryError", "never", "08P01"],
  // plain driver errors
  ["Connection terminated unexpectedly", new Error("Connection terminated unexpectedly"), "ConnectionError", "ambiguous"],
  ["ECONNRESET", errno("ECONNRESET", "read ECONNRESET"), "ConnectionError", "ambiguous", "ECONNRESET"],
  ["ECONNREFUSED", errno("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432"), "ConnectionError", "before-send", "ECONNREFUSED"],
  ["ENOTFOUND", errno("ENOTFOUND", "getaddrinfo ENOTFOUND db"), "ConnectionError", "before-send", "ENOTFOUND"],
  ["pg connect timeout", new Error("timeout exceeded when trying to connect"), "TimeoutError", "before-send"],
  ["pg error 28P01", errno("28P01", "password authentication failed for user \"app\""), "QueryError", "never", "28P01"],
  ["pg error 40P01", errno("40P01", "deadlock detected"), "TransactionError", "transaction", "40P01"],
  ["wrapped in cause", new Error("query failed", { cause: errno("ECONNREFUSED", "connect ECONNREFUSED") }), "ConnectionError", "before-send", "ECONNREFUSED"],
  // everything else
  ["TypeError", new TypeError("x is not a function"), "QueryError", "never"],
  ["a string", "boom", "QueryError", "never"],
  ["undefined", undefined, "QueryError", "never"]
]

describe("classify", () => {
  it.each(table)("%s", (_, error, tag, safety, code) => {
    const classified = classify(error, { operation: "purchaseOrder.findUnique", attempt: 2 })
    expect(classified._tag).toBe(tag)
    expect(classified.safety).toBe(safety)
    if (code !== undefined) expect(classified.code).toBe(code)
    expect(classified.operation).toBe("purchaseOrder.findUnique")
    expect(classified.attempt).toBe(2)
    expect(classified.cause).toBe(error)
    expect(isRetryable(classified)).toBe(safety !== "never")
  })

  it("keeps the reason of a Prisma message and drops its code frame", () => {
    const message = "\nInvalid `prisma.purchaseOrder.findUnique()` invocation in\n/app/src/orders.ts:12:5\n\n  11 const x =\n→ 12 await prisma.purchaseOrder.findUnique(\nCan't reach database server at `127.0.0.1:1`"
    const classified = classify(known("P1001", message))
    expect(classified.message).toBe("Can't reach database server at `127.0.0.1:1`")
  })

  it("never carries credentials in its message", () => {
    const classified = classify(new Error("could not connect to postgresql://app:s3cret@127.0.0.1:5432/app password=s3cret"))
    expect(classified.message).not.toContain("s3cret")
    expect(classified.message).toContain("postgresql://***@127.0.0.1")
  })

  it("re-classifying a DatabaseError keeps its verdict and takes the new context", () => {
    const first = classify(postgres("40001"), { operation: "a", attempt: 1 })
    const again = classify(first, { attempt: 3 })
    expect(again._tag).toBe("TransactionError")
    expect(again.attempt).toBe(3)
    expect(again.operation).toBe("a")
  })

  it.each([
    ["before-send", [true, true, true, true]],
    ["ambiguous", [true, false, true, false]],
    ["transaction", [true, true, true, true]],
    ["never", [false, false, false, false]]
  ] as const)("retry safety of %s for read, write, idempotent-write, transaction", (safety, expected) => {
    const error = classify(undefined)
    const withSafety = { ...error, safety } as DatabaseError
    expect((["read", "write", "idempotent-write", "transaction"] as const).map((k) => isRetryable(withSafety, k))).toEqual(
      expected
    )
  })
})

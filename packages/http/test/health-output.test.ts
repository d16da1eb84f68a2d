// `/health` is public: while the database is unreachable, refuses the login or
// lacks the database, the response says why in a few generic words and never
// names the host, port, user or database; the detail is logged, once per check.
import { type Cluster, freePort } from "@prisma-resilience/devdb"
import { applyMigrations } from "@prisma-resilience/http/db"
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, type RunningServer, sql, startDatabase, startServer } from "./support.js"

let cluster: Cluster
const servers: Array<RunningServer> = []
// A user and a database of their own, so that their names cannot occur by chance.
const suffix = randomBytes(4).toString("hex")
const user = `hc_user_${suffix}`
const database = `hc_db_${suffix}`
const password = `pw_${randomBytes(8).toString("hex")}`

const urlFor = (options: { readonly port?: number; readonly password?: string; readonly database?: string } = {}) => {
  const url = new URL(cluster.url)
  url.username = user
  url.password = options.password ?? password
  url.pathname = `/${options.database ?? database}`
  if (options.port !== undefined) url.port = String(options.port)
  return url.toString()
}

// A quick warm-up give-up, so that a database that cannot be used is
// `unreachable` (not `warming`) within seconds; attempts long enough to end
// with the server's own error, not their timeout, on a loaded machine.
const failFast = {
  DB_WARMUP_TIMEOUT_MS: "2500",
  DB_WARMUP_ATTEMPT_TIMEOUT_MS: "2000",
  DB_WARMUP_BACKOFF_MS: "100",
  DB_WARMUP_BACKOFF_MAX_MS: "200"
}

const start = async (url: string, env: Record<string, string> = {}) => {
  const server = await startServer(url, env)
  servers.push(server)
  return server
}

interface Health {
  readonly status: number
  /** status line, headers and body: everything a client sees */
  readonly raw: string
  readonly body: { status: string; reason?: string; output?: string; checks: Record<string, Array<{ output?: string }>> }
}

const health = async (server: RunningServer): Promise<Health> => {
  const response = await fetch(`${server.baseUrl}/health`)
  const text = await response.text()
  const headers = [...response.headers].map(([name, value]) => `${name}: ${value}`).join("\n")
  return { status: response.status, raw: `${response.status} ${response.statusText}\n${headers}\n\n${text}`, body: JSON.parse(text) }
}

/** Nothing of where the database is or who logs in, as text or as a number. */
const expectNoConnectionDetails = (raw: string, port: number) => {
  for (const secret of ["127.0.0.1", "localhost", user, database, password]) expect(raw).not.toContain(secret)
  expect(raw).not.toMatch(new RegExp(`(?<![\\d.])${port}(?![\\d.])`))
}

/**
 * Asks `/health` once and checks that exactly one log line, "Health check
 * failed: <reason>: …", holds the detail the response leaves out.
 */
const failedCheck = async (server: RunningServer, detail: RegExp) => {
  const before = server.logs.length
  const response = await health(server)
  const lines = server.logs.slice(before).filter((line) => line.includes("Health check failed"))
  expect(lines, server.logs.slice(before).join("\n")).toHaveLength(1)
  expect(lines[0]).toContain(`Health check failed: ${response.body.reason}: `)
  expect(lines[0]).toMatch(detail)
  return response
}

beforeAll(async () => {
  cluster = await startDatabase()
  await sql(cluster, `CREATE ROLE ${user} LOGIN PASSWORD '${password}'`)
  await sql(cluster, `CREATE DATABASE ${database} OWNER ${user}`)
  await applyMigrations(urlFor())
})

afterAll(async () => {
  for (const server of servers.reverse()) await server.stop().catch(() => {})
  await cluster?.destroy()
})

describe("/health while the database cannot be used (#17)", () => {
  it("keeps the reason and a generic message public when the login, the database or the server is wrong", async () => {
    const closedPort = await freePort()
    const cases = [
      { url: urlFor({ password: "wrong" }), detail: new RegExp(`authentication failed for user "${user}"`) },
      { url: urlFor({ database: `${database}_missing` }), detail: new RegExp(`${database}_missing`) },
      { url: urlFor({ port: closedPort }), detail: new RegExp(`127\\.0\\.0\\.1:${closedPort}|ECONNREFUSED`) }
    ]
    await Promise.all(cases.map(async ({ detail, url }) => {
      const server = await start(url, failFast)
      await eventually(async () => (await health(server)).body.reason === "unreachable", 100, 100)
      const response = await failedCheck(server, detail)
      expectNoConnectionDetails(response.raw, Number(new URL(url).port))
      expect(response.status).toBe(503)
      expect(response.body).toMatchObject({ status: "fail", reason: "unreachable", output: "database unreachable" })
      expect(response.body.checks["postgres:responseTime"]![0]!.output).toBe("database unreachable")
    }))
  })

  // Last: it stops the cluster.
  it("says only `database unreachable` when a warmed-up service loses its database", async () => {
    const server = await start(urlFor())
    await eventually(async () => (await health(server)).status === 200)
    await cluster.stop("fast")
    const response = await failedCheck(server, new RegExp(`127\\.0\\.0\\.1:${cluster.port}|ECONNREFUSED|terminat|connect`, "i"))
    expectNoConnectionDetails(response.raw, cluster.port)
    expect(response.status).toBe(503)
    expect(["unreachable", "timeout"]).toContain(response.body.reason)
    expect(response.body.output).toBe(response.body.reason === "timeout" ? "database probe timed out" : "database unreachable")
  })
})

// `npm start` as a process: the embedded PostgreSQL when DATABASE_URL is
// unset, and the SIGTERM sequence with a slow request in flight.
import type { Cluster } from "@prisma-resilience/devdb"
import fs from "node:fs"
import fsp from "node:fs/promises"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { indexOf, startMain, stopChildren, withLog } from "./mainProcess.js"
import { eventually, sql, startDatabase } from "./support.js"

const postmasterOf = (dataDir: string): number | undefined => {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")
      if (path.basename(args[0] ?? "") === "postgres" && args.includes(dataDir)) return Number(entry)
    } catch {
      // exited while listed
    }
  }
  return undefined
}

const isGone = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return /^\d+ \(.*\) [ZX]/.test(stat)
  } catch {
    return true
  }
}

afterAll(stopChildren)

describe("npm start without DATABASE_URL", () => {
  let dataDir: string

  beforeAll(async () => {
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), "http-main-data-"))
  })

  afterAll(async () => {
    const leftover = dataDir === undefined ? undefined : postmasterOf(dataDir)
    if (leftover !== undefined) process.kill(leftover, "SIGQUIT")
    if (dataDir !== undefined) await fsp.rm(dataDir, { recursive: true, force: true })
  })

  it("starts an embedded PostgreSQL, migrates, serves, restarts it when it dies, and stops it all on SIGTERM with exit code 0", async () => {
    const main = startMain({ DATA_DIR: dataDir })
    await withLog(main, async () => {
      const baseUrl = await main.baseUrl
      await eventually(async () => (await fetch(`${baseUrl}/health`)).status === 200, 300)
      const created = await fetch(`${baseUrl}/purchase-orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ reference: "PO-MAIN-1", totalCents: 1 })
    })
    expect(created.status).toBe(201)
    const crashed = postmasterOf(dataDir)
    expect(crashed).toBeTypeOf("number")

    // A postmaster that dies is started again; the acknowledged order survives (fsync on).
    process.kill(crashed!, "SIGKILL")
    const restarted = /Embedded PostgreSQL listening again on 127\.0\.0\.1:\d+ \(restarted in \d+ ms\)/
    await eventually(async () => {
      const again = postmasterOf(dataDir)
      return again !== undefined && again !== crashed && main.lines.some((line) => restarted.test(line)) &&
        (await fetch(`${baseUrl}/health`)).status === 200
    }, 200, 100)
    const { id } = (await created.json()) as { id: string }
    expect((await fetch(`${baseUrl}/purchase-orders/${id}`)).status).toBe(200)
    const postmaster = postmasterOf(dataDir)

    main.child.kill("SIGTERM")
    expect(await main.exit).toBe(0)
    expect(isGone(postmaster!)).toBe(true)
    const { lines } = main
    expect(indexOf(lines, /Embedded PostgreSQL listening/)).toBeLessThan(indexOf(lines, /Listening on/))
    indexOf(lines, /Migrations: 1 applied/)
    indexOf(lines, /Ready \d+ ms after start \(database warm-up \d+ ms\)/)
    const order = [/Shutting down/, /HTTP server closed/, /Database disconnected/, /Embedded PostgreSQL stopped/]
      .map((pattern) => indexOf(lines, pattern))
    expect(order).toEqual([...order].sort((a, b) => a - b))
    })
  })
})

describe("SIGTERM with a request in flight", () => {
  let cluster: Cluster

  beforeAll(async () => {
    cluster = await startDatabase()
  })

  afterAll(async () => {
    await cluster?.destroy()
  })

  it("fails health with shutting_down, stops accepting, lets the slow request finish with 200, then disconnects", async () => {
    const main = startMain({
      DATABASE_URL: cluster.url,
      SHUTDOWN_DELAY_MS: "2000",
      DB_ATTEMPT_TIMEOUT_MS: "5000",
      DB_RETRY_DELAYS_MS: "none",
      DB_WARMUP_WAIT_MS: "1000"
    })
    await withLog(main, async () => {
      const baseUrl = await main.baseUrl
      await eventually(async () => (await fetch(`${baseUrl}/health`)).status === 200, 300)
      const order = (await (await fetch(`${baseUrl}/purchase-orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ reference: "PO-SLOW-1", totalCents: 1 })
      })).json()) as { id: string }

      // The table lock makes the read wait inside PostgreSQL until the test lets go.
      const locker = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 5_000 })
      locker.on("error", () => {})
      await locker.connect()
      try {
        await locker.query("BEGIN")
        await locker.query("LOCK TABLE purchase_order IN ACCESS EXCLUSIVE MODE")
        const slow = fetch(`${baseUrl}/purchase-orders/${order.id}`)
        await eventually(async () =>
          (await sql<{ n: number }>(cluster, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`))[0]!
            .n > 0
        )

        main.child.kill("SIGTERM")
        await eventually(async () => {
          const health = await fetch(`${baseUrl}/health`)
          const body = (await health.json()) as { reason?: string }
          return health.status === 503 && body.reason === "shutting_down"
        }, 60, 50)
        // After the delay the listener closes while the slow request is still in flight.
        await eventually(() => fetch(`${baseUrl}/live`).then(() => false, () => true), 60, 50)

        await locker.query("COMMIT")
        const response = await slow
        expect(response.status).toBe(200)
        expect(((await response.json()) as { id: string }).id).toBe(order.id)
      } finally {
        await locker.end()
      }

      expect(await main.exit).toBe(0)
      const { lines } = main
      const order_ = [
        /Shutting down/,
        /draining 1 in-flight request/,
        /Drained in \d+ ms/,
        /HTTP server closed/,
        /Database disconnected/
      ].map((pattern) => indexOf(lines, pattern))
      expect(order_).toEqual([...order_].sort((a, b) => a - b))
      expect(lines.join("\n")).not.toContain(cluster.password)
    })
  })
})

describe("settings and the listen address are checked before the server serves", () => {
  // Never reached: every case must stop before the first connection attempt matters.
  const unreachable = "postgresql://app:hunter2-secret@127.0.0.1:1/app"

  it.each([
    ["DB_CIRCUIT_FAILURE_THRESHOLD", "abc", "0 (disabled) or a positive integer"],
    ["DB_RETRY_BUDGET_TOKEN_RATIO", "-1", "a number above 0 and at most 1"],
    ["DB_RETRY_BUDGET_MAX_TOKENS", "abc", "0 (disabled) or a positive finite number"],
    ["DB_RETRY_BUDGET_MAX_TOKENS", "Infinity", "0 (disabled) or a positive finite number"],
    ["DB_CIRCUIT_RESET_MS", "0", "a positive integer number of milliseconds"],
    ["DB_POOL_MAX", "ten", "a positive integer"],
    ["DB_RETRY_JITTER", "maybe", "true or false"],
    ["DB_RETRY_DELAYS_MS", "500,x", "comma-separated non-negative integers"],
    ["SHUTDOWN_DRAIN_MS", "-5", "a non-negative integer number of milliseconds"],
    ["PORT", "70000", "a port number from 0 to 65535"]
  ])("%s=%s: exits non-zero naming the variable and its range, without listening", async (name, value, range) => {
    const main = startMain({ DATABASE_URL: unreachable, [name]: value })
    const code = await Promise.race([main.exit, new Promise<string>((resolve) => setTimeout(() => resolve("timeout"), 20_000))])
    const log = main.lines.join("\n")
    expect(code, log).not.toBe(0)
    expect(code, log).not.toBe("timeout")
    expect(log).toContain(name)
    expect(log).toContain(range)
    expect(log).toContain(JSON.stringify(value))
    expect(log).not.toMatch(/Listening on/)
    expect(log).not.toContain("hunter2-secret")
  })

  it("says which address it could not listen on, and why", async () => {
    // TEST-NET-1 (RFC 5737) is assigned to no interface here: bind fails at once, nothing is sent.
    const main = startMain({ DATABASE_URL: unreachable, HOST: "192.0.2.1" })
    const code = await Promise.race([main.exit, new Promise<string>((resolve) => setTimeout(() => resolve("timeout"), 20_000))])
    const log = main.lines.join("\n")
    expect(code, log).not.toBe(0)
    expect(code, log).not.toBe("timeout")
    expect(log).toMatch(/ListenError: cannot listen on 192\.0\.2\.1:0 \(HOST, PORT\): EADDRNOTAVAIL/)
    expect(log).not.toContain("An error has occurred")
  })
})

describe("SIGTERM with idle keep-alive connections", () => {
  let cluster: Cluster

  beforeAll(async () => {
    cluster = await startDatabase()
  })

  afterAll(async () => {
    await cluster?.destroy()
  })

  it("serves a request that arrives on an idle keep-alive connection after SIGTERM, with Connection: close", async () => {
    const main = startMain({ DATABASE_URL: cluster.url })
    await withLog(main, async () => {
      const baseUrl = new URL(await main.baseUrl)
      await eventually(async () => (await fetch(`${baseUrl.origin}/health`)).status === 200, 300)
      const request = "GET /live HTTP/1.1\r\nHost: service\r\n\r\n"
      // Connections a load balancer keeps open: accepted, served once, idle.
      const sockets = await Promise.all(
        Array.from({ length: 5 }, () =>
          new Promise<net.Socket>((resolve, reject) => {
            const socket = net.connect(Number(baseUrl.port), "127.0.0.1", () => socket.write(request))
            socket.once("error", reject)
            socket.setEncoding("utf8").once("data", () => resolve(socket))
          }))
      )
      const answers = sockets.map((socket) =>
        new Promise<string>((resolve) => {
          let text = ""
          socket.on("data", (chunk: string) => (text += chunk))
          socket.once("error", (error) => resolve(`error: ${error.message}`))
          socket.once("close", () => resolve(text))
        })
      )
      main.child.kill("SIGTERM")
      await new Promise((resolve) => setTimeout(resolve, 50))
      // Sent after the listener closed, on connections it had accepted: served, not reset.
      for (const socket of sockets) socket.write(request)
      for (const answer of await Promise.all(answers)) {
        expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
        expect(answer.toLowerCase()).toContain("connection: close")
      }
      expect(await main.exit).toBe(0)
      indexOf(main.lines, /draining 0 in-flight request\(s\) on \d+ connection\(s\)/)
    })
  })
})

describe("Ctrl-C under npm start", () => {
  let cluster: Cluster

  beforeAll(async () => {
    cluster = await startDatabase()
  })

  afterAll(async () => {
    await cluster?.destroy()
  })

  it("a doubled SIGINT (terminal and npm) still stops in order and exits 0", async () => {
    const main = startMain({ DATABASE_URL: cluster.url })
    await withLog(main, async () => {
      const baseUrl = await main.baseUrl
      await eventually(async () => (await fetch(`${baseUrl}/health`)).status === 200, 300)
      main.child.kill("SIGINT")
      await new Promise((resolve) => setTimeout(resolve, 5))
      main.child.kill("SIGINT")
      expect(await main.exit).toBe(0)
      const order = [/Shutting down/, /HTTP server closed/, /Database disconnected/].map((pattern) => indexOf(main.lines, pattern))
      expect(order).toEqual([...order].sort((a, b) => a - b))
    })
  })
})

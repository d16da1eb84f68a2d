// SIGTERM under clients that open a connection per request (no keep-alive):
// every request sent before the signal is answered, none is reset, and the
// process still exits within its drain bound.
import type { Cluster } from "@prisma-resilience/devdb"
import net from "node:net"
import { performance } from "node:perf_hooks"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startMain, stopChildren, withLog } from "./mainProcess.js"
import { eventually, startDatabase } from "./support.js"

interface Shot {
  /** when `connect` was called (performance.now of this process) */
  readonly connectAt: number
  /** when the whole request had been handed to the kernel */
  writtenAt?: number
  status?: string
  error?: string
  closedAt?: number
}

const request = "GET /live HTTP/1.1\r\nHost: service\r\nConnection: close\r\n\r\n"

/** One request on a connection of its own, as a client without keep-alive sends it. */
const shoot = (port: number): Promise<Shot> =>
  new Promise((resolve) => {
    const shot: Shot = { connectAt: performance.now() }
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(request, () => (shot.writtenAt ??= performance.now()))
    })
    let text = ""
    socket.setEncoding("latin1").on("data", (chunk: string) => (text += chunk))
    socket.once("error", (error: NodeJS.ErrnoException) => (shot.error = error.code ?? error.message))
    socket.once("close", () => {
      shot.closedAt = performance.now()
      shot.status = /^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]
      resolve(shot)
    })
  })

/**
 * `clients` loops, each sending one request per connection until `until()`
 * says stop or the server refuses connections (its listener closed).
 */
const flood = async (port: number, clients: number, until: () => boolean) => {
  const shots: Array<Shot> = []
  await Promise.all(Array.from({ length: clients }, async () => {
    while (!until()) {
      const shot = await shoot(port)
      shots.push(shot)
      if (shot.error === "ECONNREFUSED") return
    }
  }))
  return shots
}

let cluster: Cluster

beforeAll(async () => {
  cluster = await startDatabase()
})

afterAll(async () => {
  await stopChildren()
  await cluster?.destroy()
})

describe("SIGTERM under clients that open a connection per request", () => {
  const drainMs = 3_000

  it.each([1, 2, 3])("round %i: answers every request sent before the signal, resets none, and exits within its drain bound", async () => {
    const main = startMain({ DATABASE_URL: cluster.url, SHUTDOWN_DRAIN_MS: String(drainMs) })
    await withLog(main, async () => {
      const baseUrl = new URL(await main.baseUrl)
      await eventually(async () => (await fetch(`${baseUrl.origin}/health`)).status === 200, 300)
      let signalledAt = Number.POSITIVE_INFINITY
      // Requests keep coming for a bounded while after the signal, as from
      // clients that have not heard of it yet.
      const shots = flood(Number(baseUrl.port), 48, () => performance.now() > signalledAt + 1_500)
      await new Promise((resolve) => setTimeout(resolve, 300))
      main.child.kill("SIGTERM")
      signalledAt = performance.now()
      const code = await main.exit
      const exitedAfterMs = performance.now() - signalledAt
      const all = await shots

      const before = all.filter((shot) => shot.writtenAt !== undefined && shot.writtenAt < signalledAt)
      const unanswered = before.filter((shot) => shot.status !== "200" || shot.error !== undefined)
      const summary = (list: ReadonlyArray<Shot>) =>
        list.slice(0, 10).map((shot) =>
          `${shot.error ?? shot.status ?? "no answer"} (sent ${(signalledAt - shot.writtenAt!).toFixed(1)} ms before SIGTERM, closed ${(shot.closedAt! - signalledAt).toFixed(1)} ms after)`
        )
      const after = all.filter((shot) => !before.includes(shot))
      console.info(
        `${all.length} requests; ${before.length} sent before SIGTERM, ${unanswered.length} of them unanswered; ` +
          `${after.length} after: ${after.filter((shot) => shot.status === "200").length} answered, ` +
          `${after.filter((shot) => shot.error === "ECONNRESET").length} reset, ` +
          `${after.filter((shot) => shot.error === "ECONNREFUSED").length} refused; exit ${exitedAfterMs.toFixed(0)} ms after SIGTERM`
      )
      // Enough traffic right before the signal for the backlog to matter.
      expect(before.filter((shot) => signalledAt - shot.writtenAt! < 50).length).toBeGreaterThan(10)
      expect(summary(unanswered)).toEqual([])
      expect(code).toBe(0)
      expect(main.lines.join("\n")).toMatch(/Drained in \d+ ms/)
      // The drain bound, plus start-up of nothing: the database disconnect and exit.
      expect(exitedAfterMs).toBeLessThan(drainMs + 5_000)
    })
  })
})

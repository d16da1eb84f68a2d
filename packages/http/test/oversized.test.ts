// A body over MAX_BODY_BYTES, declared with Content-Length and sent whole
// before the client reads (as many clients do): the service answers 413 and
// closes lingeringly, reading and discarding what the client still sends, so
// the client gets the status instead of EPIPE or ECONNRESET.
import type { Cluster } from "@prisma-resilience/devdb"
import net from "node:net"
import { performance } from "node:perf_hooks"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { lingerMaxMs } from "../src/internal/drain.js"
import { type MainProcess, startMain, stopChildren, withLog } from "./mainProcess.js"
import { eventually, startDatabase } from "./support.js"

const bodyBytes = 50 * 1024 * 1024
const chunk = Buffer.alloc(64 * 1024, 0x61)

interface Outcome {
  readonly status: string | undefined
  /** the socket error, if any, and whether it came before the status line */
  readonly error: string | undefined
  readonly errorBeforeStatus: boolean
  readonly bytesWritten: number
  readonly headers: string
  /** from connect until the connection closed */
  readonly ms: number
}

/**
 * POSTs `bodyBytes` bytes in 64 KiB chunks, reading whatever comes back
 * meanwhile: declared with Content-Length, or chunked (no length to refuse
 * the body by before reading it).
 */
const postHuge = (port: number, extraHeaders: string, chunked = false): Promise<Outcome> =>
  new Promise((resolve) => {
    const started = performance.now()
    // Half-open: the server's FIN after its answer does not stop the upload,
    // as it does not stop a client that writes the whole body before reading.
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
    let text = ""
    let written = 0
    let error: string | undefined
    let errorBeforeStatus = false
    socket.on("connect", () => {
      socket.write(
        `POST /purchase-orders HTTP/1.1\r\nHost: service\r\nContent-Type: application/json\r\n` +
          (chunked ? "Transfer-Encoding: chunked\r\n" : `Content-Length: ${bodyBytes}\r\n`) + `${extraHeaders}\r\n`
      )
      const piece = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from("\r\n")]) : chunk
      const pump = () => {
        while (written < bodyBytes && !socket.destroyed) {
          written += chunk.length
          if (!socket.write(piece)) return void socket.once("drain", pump)
        }
        // All sent: the client ends its side and waits for the server to close.
        if (written >= bodyBytes) {
          if (chunked) socket.end("0\r\n\r\n")
          else socket.end()
        }
      }
      pump()
    })
    socket.setEncoding("latin1").on("data", (data: string) => (text += data))
    socket.on("error", (e: NodeJS.ErrnoException) => {
      if (error !== undefined) return
      error = `${e.code ?? e.message} after ${(performance.now() - started).toFixed(0)} ms, ${written} bytes written`
      errorBeforeStatus = !/^HTTP\/1\.1 \d{3} /.test(text)
    })
    socket.on("close", () =>
      resolve({
        status: /^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1],
        error,
        errorBeforeStatus,
        bytesWritten: written,
        headers: text.split("\r\n\r\n")[0] ?? "",
        ms: performance.now() - started
      })
    )
  })

let cluster: Cluster
let main: MainProcess
let port: number

beforeAll(async () => {
  cluster = await startDatabase()
  main = startMain({ DATABASE_URL: cluster.url })
  const baseUrl = new URL(await main.baseUrl)
  port = Number(baseUrl.port)
  await eventually(async () => (await fetch(`${baseUrl.origin}/health`)).status === 200, 300)
})

afterAll(async () => {
  await stopChildren()
  await cluster?.destroy()
})

describe("a 50 MB POST", () => {
  it.each([
    ["Connection: close", "Connection: close\r\n"],
    ["keep-alive", ""]
  ])("with its Content-Length, %s: reads 413 every time, never EPIPE or ECONNRESET, and the service closes the connection", async (_, extra) => {
    await withLog(main, async () => {
      const outcomes: Array<Outcome> = []
      for (let run = 0; run < 5; run++) outcomes.push(await postHuge(port, extra))
      console.info(outcomes.map((o) => `${o.status ?? "no status"} ${o.error ?? "no error"} (${o.bytesWritten} bytes written, closed after ${o.ms.toFixed(0)} ms)`).join("; "))
      for (const outcome of outcomes) {
        expect(outcome.status, outcome.error).toBe("413")
        expect(outcome.errorBeforeStatus, outcome.error).toBe(false)
        expect(outcome.error).toBeUndefined()
        // Closed after the answer (the socket's close ended the read), and said so.
        expect(outcome.headers.toLowerCase()).toContain("connection: close")
      }
    })
  })

  it("chunked, with no Content-Length: reads 413 every time, never EPIPE or ECONNRESET, and the service closes the connection", async () => {
    await withLog(main, async () => {
      const outcomes: Array<Outcome> = []
      for (let run = 0; run < 3; run++) outcomes.push(await postHuge(port, "", true))
      console.info(outcomes.map((o) => `${o.status ?? "no status"} ${o.error ?? "no error"} (${o.bytesWritten} bytes written, closed after ${o.ms.toFixed(0)} ms)`).join("; "))
      for (const outcome of outcomes) {
        expect(outcome.status, outcome.error).toBe("413")
        expect(outcome.errorBeforeStatus, outcome.error).toBe(false)
        expect(outcome.headers.toLowerCase()).toContain("connection: close")
      }
    })
  })

  it("a client that never stops sending is read for at most lingerMaxMs after the 413, then cut off", async () => {
    await withLog(main, async () => {
      const started = performance.now()
      const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
      let text = ""
      let statusAt: number | undefined
      socket.setEncoding("latin1").on("data", (data: string) => {
        text += data
        statusAt ??= performance.now()
      })
      socket.on("error", () => {})
      socket.write(
        `POST /purchase-orders HTTP/1.1\r\nHost: service\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${1024 ** 4}\r\n\r\n`
      )
      // 6.4 MB/s, far short of the declared terabyte, until the service gives up.
      const writer = setInterval(() => socket.write(chunk), 10)
      await new Promise((resolve) => socket.once("close", resolve))
      clearInterval(writer)
      const closedAt = performance.now()
      expect(text).toMatch(/^HTTP\/1\.1 413 /)
      // Cut off by the bound, not sooner (the client was still sending) and not never.
      expect(closedAt - statusAt!).toBeGreaterThanOrEqual(lingerMaxMs - 100)
      expect(closedAt - started).toBeLessThan(lingerMaxMs + 5_000)
    })
  })

  it("the service still serves afterwards", async () => {
    const response = await fetch(`http://127.0.0.1:${port}/live`)
    expect(response.status).toBe(200)
  })
})

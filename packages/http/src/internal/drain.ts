/**
 * Graceful drain for a Node HTTP server: Effect 3's NodeHttpServer closes the
 * listener on shutdown but neither waits for nor tracks in-flight requests.
 * Requests are tracked at the Node level, from 'request' until the response
 * has been written out (or the client went away), so a response still being
 * flushed counts as in flight. Connections are tracked too: one that was
 * accepted but whose request has not been read yet (it may already be in the
 * socket buffer) is given `idleGraceMs` to deliver it instead of being reset.
 */
import { Effect } from "effect"
import type * as Http from "node:http"
import * as Net from "node:net"

export interface Drain {
  readonly inFlight: () => number
  /** Open connections, with or without a request. */
  readonly connections: () => number
  /**
   * Stops accepting connections, asks keep-alive clients to reconnect
   * elsewhere, serves what arrives on connections already accepted for up to
   * `idleGraceMs`, and waits until no connection is left or `timeoutMs`
   * passed; succeeds with whether everything finished in time.
   */
  readonly drain: (timeoutMs: number, idleGraceMs: number) => Effect.Effect<boolean>
  /** Destroys every remaining connection. */
  readonly closeAll: Effect.Effect<void>
}

// Connections the kernel completed but Node has not accepted yet are accepted
// in the loop's poll phase: two turns let them in before the listener closes.
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

export const track = (server: Http.Server): Drain => {
  const active = new Set<Http.ServerResponse>()
  const sockets = new Set<Net.Socket>()
  let draining = false
  let onChange: (() => void) | undefined

  server.on("connection", (socket: Net.Socket) => {
    sockets.add(socket)
    socket.once("close", () => {
      sockets.delete(socket)
      onChange?.()
    })
  })
  server.on("request", (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
    active.add(response)
    if (draining) response.shouldKeepAlive = false
    response.once("close", () => {
      active.delete(response)
      onChange?.()
    })
  })

  const drain = (timeoutMs: number, idleGraceMs: number) =>
    Effect.async<boolean>((resume) => {
      draining = true
      // Responses not yet started tell their clients `Connection: close`.
      for (const response of active) {
        if (!response.headersSent) response.shouldKeepAlive = false
      }
      let done = false
      const finish = (drained: boolean) => {
        if (done) return
        done = true
        clearTimeout(timer)
        clearTimeout(grace)
        onChange = undefined
        resume(Effect.succeed(drained))
      }
      const timer = setTimeout(() => finish(false), timeoutMs)
      // After the grace, a connection that still sent nothing is closed; one
      // that did is served (with `Connection: close`) and closes after.
      const grace = setTimeout(() => server.closeIdleConnections(), Math.min(idleGraceMs, timeoutMs))
      onChange = () => {
        if (sockets.size === 0 && active.size === 0) finish(true)
      }
      void turn().then(turn).then(() => {
        // http.Server#close also closes idle connections (Node ≥ 19), which
        // would reset the accepted ones whose request is still on its way:
        // close only the listener, and leave idle connections to the grace.
        Net.Server.prototype.close.call(server)
        onChange?.()
      })
      return Effect.sync(() => finish(false))
    })

  return {
    inFlight: () => active.size,
    connections: () => sockets.size,
    drain,
    closeAll: Effect.sync(() => server.closeAllConnections())
  }
}

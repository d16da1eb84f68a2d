/**
 * Graceful drain for a Node HTTP server: Effect 3's NodeHttpServer closes the
 * listener on shutdown but neither waits for nor tracks in-flight requests.
 * Requests are tracked at the Node level, from 'request' until the response
 * has been written out (or the client went away), so a response still being
 * flushed counts as in flight.
 */
import { Effect } from "effect"
import type * as Http from "node:http"

export interface Drain {
  readonly inFlight: () => number
  /**
   * Stops accepting connections, asks keep-alive clients to reconnect
   * elsewhere, and waits until no request is in flight or `timeoutMs` passed;
   * succeeds with whether everything finished in time.
   */
  readonly drain: (timeoutMs: number) => Effect.Effect<boolean>
  /** Destroys every remaining connection. */
  readonly closeAll: Effect.Effect<void>
}

export const track = (server: Http.Server): Drain => {
  const active = new Set<Http.ServerResponse>()
  let draining = false
  let onIdle: (() => void) | undefined

  server.on("request", (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
    active.add(response)
    if (draining) response.shouldKeepAlive = false
    response.once("close", () => {
      active.delete(response)
      if (active.size === 0) onIdle?.()
    })
  })

  const drain = (timeoutMs: number) =>
    Effect.async<boolean>((resume) => {
      draining = true
      // Responses not yet started tell their clients `Connection: close`.
      for (const response of active) {
        if (!response.headersSent) response.shouldKeepAlive = false
      }
      server.close()
      server.closeIdleConnections()
      if (active.size === 0) return resume(Effect.succeed(true))
      const timer = setTimeout(() => resume(Effect.succeed(false)), timeoutMs)
      onIdle = () => {
        clearTimeout(timer)
        resume(Effect.succeed(true))
      }
      return Effect.sync(() => {
        clearTimeout(timer)
        onIdle = undefined
      })
    })

  return {
    inFlight: () => active.size,
    drain,
    closeAll: Effect.sync(() => server.closeAllConnections())
  }
}

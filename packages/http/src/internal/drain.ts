/**
 * Graceful drain for a Node HTTP server: Effect 3's NodeHttpServer closes the
 * listener on shutdown but neither waits for nor tracks in-flight requests.
 * Requests are tracked at the Node level, from 'request' until the response
 * has been written out (or the client went away), so a response still being
 * flushed counts as in flight. Connections are tracked too: one that was
 * accepted but whose request has not been read yet (it may already be in the
 * socket buffer) is given `idleGraceMs` to deliver it instead of being reset.
 *
 * Before the listener closes, every connection the kernel has already
 * completed is accepted: closing a listening socket resets the connections
 * still in its accept queue, and a busy server can have dozens there, sent
 * tens of milliseconds earlier by clients that open a connection per request.
 *
 * A connection closed after a response that was sent before its request's
 * body had been read (a 413, or any answer to a client that asked for
 * `Connection: close`) is closed lingeringly: closing a socket with unread
 * input makes the kernel reset the connection, and a client still writing its
 * body then gets EPIPE or ECONNRESET instead of the answer waiting for it.
 */
import { Effect } from "effect"
import type * as Http from "node:http"
import * as Net from "node:net"

export interface Drain {
  readonly inFlight: () => number
  /** Open connections, with or without a request. */
  readonly connections: () => number
  /**
   * Accepts what the kernel has queued, stops accepting connections, asks
   * keep-alive clients to reconnect elsewhere, serves what arrives on
   * connections already accepted for up to `idleGraceMs`, and waits until no
   * connection is left or `timeoutMs` passed; succeeds with whether
   * everything finished in time.
   */
  readonly drain: (timeoutMs: number, idleGraceMs: number) => Effect.Effect<boolean>
  /** Destroys every remaining connection. */
  readonly closeAll: Effect.Effect<void>
}

/**
 * How long the listener waits for its own marker connection. On loopback it
 * is accepted in the next turn of the loop; only a full accept queue drops
 * its handshake, which the kernel sends again after 1 s.
 */
export const acceptQueuedMaxMs = 2_000

/**
 * How long a connection closed before its request's body was read keeps
 * reading (and discarding) what its client still sends, after the answer: a
 * client that writes its whole body before reading needs that long to get to
 * the answer (50 MB over loopback takes well under a second). Time, not
 * bytes, bounds it: a byte limit would reset exactly the large uploads this
 * is for. (nginx's `lingering_time` is 30 s.)
 */
export const lingerMaxMs = 5_000

/**
 * Ends `socket` after what is queued for it (the answer), and keeps reading
 * until the client closes its side or `lingerMaxMs` passed. What arrives goes
 * through the HTTP parser into the request, which Node discards once its
 * response has finished.
 */
const lingeringClose = (socket: Net.Socket) => {
  socket.end()
  const timer = setTimeout(() => socket.destroy(), lingerMaxMs)
  socket.once("close", () => clearTimeout(timer))
}

// Node's http server closes a connection whose response was its last with
// `socket.destroySoon()`: end, then destroy as soon as the end is written.
type DestroySoon = (this: Net.Socket) => void
const destroySoon = (Net.Socket.prototype as unknown as { destroySoon: DestroySoon }).destroySoon

/** `destroySoon` for a socket whose current request is `request`: lingering while its body is unread. */
const closingAfter = (request: Http.IncomingMessage): DestroySoon =>
  function(this: Net.Socket) {
    if (request.complete) destroySoon.call(this)
    else lingeringClose(this)
  }

const hasBody = (request: Http.IncomingMessage) =>
  request.headers["transfer-encoding"] !== undefined ||
  (request.headers["content-length"] !== undefined && request.headers["content-length"] !== "0")

/** For a request with a body: its connection, when closed, closes lingeringly while the body is unread. */
const closeLingeringly = (request: Http.IncomingMessage, response: Http.ServerResponse, maxBodyBytes: number) => {
  if (!hasBody(request)) return
  // Keeping the connection would mean reading all of an oversized body (Node
  // discards it to reach the next request): close it instead, lingeringly,
  // which bounds that read.
  if (Number(request.headers["content-length"]) > maxBodyBytes) response.shouldKeepAlive = false
  const socket = request.socket as Net.Socket & { destroySoon: DestroySoon }
  socket.destroySoon = closingAfter(request)
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Where a connection of this process reaches `server`, or undefined when it listens on no TCP address. */
const selfAddress = (server: Net.Server): { readonly host: string; readonly port: number } | undefined => {
  const address = server.address()
  if (address === null || typeof address === "string") return undefined
  const host = address.address === "0.0.0.0" ? "127.0.0.1" : address.address === "::" ? "::1" : address.address
  return { host, port: address.port }
}

/** The connection `acceptQueued` makes to its own listener, and what to do once the server accepted it. */
interface Marker {
  readonly socket: Net.Socket
  readonly arrived: () => void
}

const isMarker = (socket: Net.Socket, marker: Marker | undefined) =>
  marker !== undefined && socket.remotePort === marker.socket.localPort &&
  socket.remoteAddress === marker.socket.localAddress

/**
 * Resolves once every connection the kernel completed before this call has
 * been accepted. The accept queue is first in, first out: a connection of
 * this process's own, made now, is accepted after all of them (`watch` is
 * told which one it is, for the 'connection' listener). Bounded by `maxMs`;
 * without a TCP address or when the connect fails, after two turns of the
 * loop (one poll phase accepts what is queued then).
 */
const acceptQueued = (server: Net.Server, maxMs: number, watch: (marker: Marker | undefined) => void) =>
  new Promise<void>((resolve) => {
    const target = selfAddress(server)
    if (target === undefined) return void turn().then(turn).then(resolve)
    const socket = Net.connect({ host: target.host, port: target.port })
    let timer: ReturnType<typeof setTimeout> | undefined = undefined
    let settled = false
    const done = () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      watch(undefined)
      socket.destroy()
      // One more turn lets the loop finish accepting what came in with it.
      void turn().then(resolve)
    }
    watch({ socket, arrived: done })
    timer = setTimeout(done, maxMs)
    socket.once("error", () => void turn().then(turn).then(done))
  })

export interface Options {
  /** MAX_BODY_BYTES: a request that declares a larger body is answered with `Connection: close` */
  readonly maxBodyBytes: number
}

export const track = (server: Http.Server, options: Options): Drain => {
  const active = new Set<Http.ServerResponse>()
  const sockets = new Set<Net.Socket>()
  let draining = false
  let onChange: (() => void) | undefined
  let marker: Marker | undefined

  server.on("connection", (socket: Net.Socket) => {
    if (isMarker(socket, marker)) {
      socket.destroy()
      marker!.arrived()
      return
    }
    sockets.add(socket)
    socket.once("close", () => {
      sockets.delete(socket)
      onChange?.()
    })
  })
  server.on("request", (request: Http.IncomingMessage, response: Http.ServerResponse) => {
    active.add(response)
    if (draining) response.shouldKeepAlive = false
    closeLingeringly(request, response, options.maxBodyBytes)
    response.once("close", () => {
      active.delete(response)
      onChange?.()
    })
  })

  const drain = (timeoutMs: number, idleGraceMs: number) =>
    Effect.callback<boolean>((resume) => {
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
      void acceptQueued(server, Math.min(acceptQueuedMaxMs, timeoutMs), (next) => (marker = next)).then(() => {
        // http.Server#close also closes idle connections (Node ≥ 19), which
        // would reset the accepted ones whose request is still on its way:
        // close only the listener, and leave idle connections to the grace.
        if (server.listening) Net.Server.prototype.close.call(server)
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

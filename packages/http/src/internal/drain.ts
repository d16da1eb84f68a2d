/**
 * Graceful drain for a Node HTTP server. Effect 4's NodeHttpServer waits for
 * its connections on shutdown (`gracefulShutdownTimeout`), but it resets the
 * connections still in the accept queue, gives idle keep-alive connections no
 * grace and says nothing of what it waited for; this drain runs first.
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
 * Effect 4's Node server closes a connection whose request body is still
 * unread itself, once the response is written: `socket.end()`, the body left
 * unread (no discarding, so the client's writes stall), and `socket.destroy()`
 * 500 ms later. A client still writing its body then gets EPIPE or
 * ECONNRESET instead of the answer. Here such a connection keeps reading (and
 * discarding) what the client sends, and the destroy waits until the client
 * has closed its side or `lingerMaxMs` passed; a destroy with an error, or
 * `closeAll` at the end of a drain, still happens at once.
 */
const lingerOnClose = (request: Http.IncomingMessage, response: Http.ServerResponse, closing: () => boolean) => {
  const socket = request.socket
  const destroy = socket.destroy
  let lingerUntil: number | undefined
  const defer = (error?: Error) => error === undefined && !closing() && lingerUntil !== undefined && Date.now() < lingerUntil
  socket.destroy = function(this: Net.Socket, error?: Error) {
    return defer(error) ? this : destroy.call(this, error)
  }
  response.once("finish", () => {
    if (request.complete) return void (socket.destroy = destroy)
    lingerUntil = Date.now() + lingerMaxMs
    // What arrives goes through the HTTP parser into the request: discarded.
    request.resume()
    const timer = setTimeout(() => destroy.call(socket), lingerMaxMs)
    socket.once("close", () => clearTimeout(timer))
  })
}

const hasBody = (request: Http.IncomingMessage) =>
  request.headers["transfer-encoding"] !== undefined ||
  (request.headers["content-length"] !== undefined && request.headers["content-length"] !== "0")

/** For a request with a body: its connection, when closed, closes lingeringly while the body is unread. */
const closeLingeringly = (
  request: Http.IncomingMessage,
  response: Http.ServerResponse,
  maxBodyBytes: number,
  closing: () => boolean
) => {
  if (!hasBody(request)) return
  // Keeping the connection would mean reading all of an oversized body (Node
  // discards it to reach the next request): close it instead, lingeringly,
  // which bounds that read.
  if (Number(request.headers["content-length"]) > maxBodyBytes) response.shouldKeepAlive = false
  lingerOnClose(request, response, closing)
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

type RequestListener = (request: Http.IncomingMessage, response: Http.ServerResponse) => void

/**
 * The 'checkContinue' listener. Effect 4's server listens for it (it sends
 * 100 Continue when the body is first read), so those requests never emit
 * 'request'; the service reads the body itself (`Input.strictText`), past the
 * platform, so the 100 goes out here, unless the body is refused unread.
 */
const continuing = (onRequest: RequestListener, maxBodyBytes: number): RequestListener => (request, response) => {
  onRequest(request, response)
  if (!(Number(request.headers["content-length"]) > maxBodyBytes)) response.writeContinue()
}

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
  // set by closeAll: lingering connections are destroyed with the rest
  let closingAll = false

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
  const onRequest = (request: Http.IncomingMessage, response: Http.ServerResponse) => {
    active.add(response)
    if (draining) response.shouldKeepAlive = false
    closeLingeringly(request, response, options.maxBodyBytes, () => closingAll)
    response.once("close", () => {
      active.delete(response)
      onChange?.()
    })
  }
  server.on("request", onRequest)
  server.on("checkContinue", continuing(onRequest, options.maxBodyBytes))

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
    closeAll: Effect.sync(() => {
      closingAll = true
      server.closeAllConnections()
    })
  }
}

// A loopback TCP proxy that tests put between a client and PostgreSQL to cut,
// stall or refuse connections without touching the server.
import net from "node:net"

export interface TcpProxy {
  readonly host: "127.0.0.1"
  readonly port: number
  /** client connections open now */
  readonly connections: number
  /** client connections accepted so far, refused ones included */
  readonly accepted: number
  /** destroys every open client/upstream pair with a TCP reset */
  cutAll(): void
  /** while on, connections are accepted and kept open but no byte is forwarded either way */
  stall(on: boolean): void
  /** while on, new connections are reset as soon as they are accepted */
  refuse(on: boolean): void
  /**
   * Arms a one-shot cut of the next connection whose client sends a COMMIT (a
   * Query or Parse message whose SQL starts with COMMIT, in any case).
   * `before`: the COMMIT is dropped and both sides are reset, so the server
   * rolls the transaction back. `after`: the COMMIT is forwarded (through the
   * Sync that makes an extended-protocol one run) and the client is reset at
   * once; the server commits, its answer is read and dropped, and then its
   * side is closed. Either way the client sees its connection die during
   * COMMIT and cannot know the outcome. Resolves once the cut happened; for
   * `after`, once the server answered or closed.
   */
  cutOnCommit(when: "before" | "after"): Promise<void>
  /** connections cut by `cutOnCommit` so far */
  readonly commitCuts: number
  close(): Promise<void>
}

const reset = (socket: net.Socket) => {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    // not connected yet, or the handle is already gone: a plain destroy is all that is left
    socket.destroy()
  }
}

interface Pair {
  readonly client: net.Socket
  readonly upstream: net.Socket
}

// Frontend messages before the StartupMessage have no type byte; a startup
// packet whose length makes no sense is TLS (after SSLRequest was accepted).
const PROTOCOL_3 = 196608
const MAX_STARTUP_LENGTH = 10_000
const QUERY = 0x51
const PARSE = 0x50
const SYNC = 0x53
// enough of a Query's or Parse's body to see the start of its SQL after a statement name
const SQL_PREFIX = 256

interface Piece {
  readonly bytes: Buffer
  /** the start of a Query or Parse message whose SQL is a COMMIT */
  readonly commit: boolean
  /** a whole Sync message */
  readonly sync: boolean
}

/**
 * Follows the frontend protocol across chunk boundaries and splits each chunk
 * into pieces at message starts, holding back the first bytes of a Query or
 * Parse until its SQL can be read. Everything else streams through: nothing is
 * buffered beyond a header and that prefix.
 */
const frontendSplitter = () => {
  let phase: "startup" | "typed" | "opaque" = "startup"
  let remaining = 0
  let head: Buffer = Buffer.alloc(0)

  return (chunk: Buffer): Array<Piece> => {
    const pieces: Array<Piece> = []
    const emit = (bytes: Buffer, commit = false, sync = false) => {
      if (bytes.length > 0) pieces.push({ bytes, commit, sync })
    }
    let i = 0
    const collect = (size: number) => {
      const take = Math.min(size - head.length, chunk.length - i)
      if (take > 0) {
        head = head.length === 0 ? chunk.subarray(i, i + take) : Buffer.concat([head, chunk.subarray(i, i + take)])
        i += take
      }
      return head.length >= size
    }
    while (i < chunk.length) {
      if (phase === "opaque") {
        emit(chunk.subarray(i))
        break
      }
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length - i)
        emit(chunk.subarray(i, i + take))
        remaining -= take
        i += take
        continue
      }
      const headerSize = phase === "startup" ? 8 : 5
      if (!collect(headerSize)) break
      const total = phase === "startup" ? head.readInt32BE(0) : 1 + head.readInt32BE(1)
      if (total < headerSize || (phase === "startup" && total > MAX_STARTUP_LENGTH)) {
        phase = "opaque"
        emit(head)
        head = Buffer.alloc(0)
        continue
      }
      if (phase === "startup") {
        if (head.readInt32BE(4) === PROTOCOL_3) phase = "typed"
      } else if (head[0] === QUERY || head[0] === PARSE) {
        if (!collect(Math.min(total, headerSize + SQL_PREFIX))) break
        const body = head.subarray(headerSize)
        const text = head[0] === QUERY ? body : body.subarray(body.indexOf(0) + 1)
        const end = text.indexOf(0)
        const sql = text.subarray(0, end < 0 ? text.length : end).toString("latin1")
        emit(head, /^\s*commit\b/i.test(sql))
        remaining = total - head.length
        head = Buffer.alloc(0)
        continue
      }
      const sync = phase === "typed" && head[0] === SYNC
      emit(head, false, sync)
      remaining = total - head.length
      head = Buffer.alloc(0)
    }
    return pieces
  }
}

interface CommitCut {
  readonly when: "before" | "after"
  readonly done: () => void
}

/** What a proxy's connections share: the armed commit cut, and how many cuts happened. */
interface ProxyState {
  commitCut: CommitCut | undefined
  commitCuts: number
}

/** After an `after` cut's COMMIT was forwarded: resets the client, drops the server's answer, then closes its side. */
const cutAfter = (state: ProxyState, client: net.Socket, upstream: net.Socket, cut: CommitCut) => {
  state.commitCuts += 1
  reset(client)
  // The server's answer (the outcome) must not reach the client; once it
  // came, or the server closed, the server side goes too.
  upstream.removeAllListeners("data")
  const finish = () => {
    upstream.destroy()
    cut.done()
  }
  upstream.on("data", finish)
  upstream.once("close", finish)
}

/** The client's bytes, read message by message so that a COMMIT can be caught. */
const fromClient = (state: ProxyState, client: net.Socket, upstream: net.Socket) => {
  const split = frontendSplitter()
  // after an `after` cut's COMMIT was forwarded: forward up to the Sync, then reset
  let flushing: CommitCut | undefined
  const forwardPieces = (pieces: Array<Piece>) => {
    for (const piece of pieces) {
      if (flushing !== undefined) {
        upstream.write(piece.bytes)
        if (piece.sync) {
          const cut = flushing
          flushing = undefined
          return cutAfter(state, client, upstream, cut)
        }
        continue
      }
      const cut = piece.commit ? state.commitCut : undefined
      if (cut === undefined) {
        upstream.write(piece.bytes)
        continue
      }
      state.commitCut = undefined
      if (cut.when === "before") {
        state.commitCuts += 1
        reset(client)
        reset(upstream)
        return cut.done()
      }
      upstream.write(piece.bytes)
      // A simple Query runs as it is; a Parse runs at the next Sync.
      if (piece.bytes[0] === QUERY) return cutAfter(state, client, upstream, cut)
      flushing = cut
    }
  }
  return (chunk: Buffer) => {
    // Split even when nothing is armed: message boundaries are only known
    // from the start of the stream. Corked, the pieces leave as one write.
    const pieces = split(chunk)
    upstream.cork()
    try {
      forwardPieces(pieces)
    } finally {
      upstream.uncork()
    }
    if (upstream.writableNeedDrain) client.pause()
  }
}

/** Everything one proxy holds: its connection pairs, its switches and its commit cut. */
interface Proxied extends ProxyState {
  readonly target: { readonly host: string; readonly port: number }
  readonly pairs: Set<Pair>
  accepted: number
  stalled: boolean
  refusing: boolean
}

// Forwarding by hand rather than with pipe(): pipe() resumes the source on
// 'drain', which would undo a stall.
const forward = (p: Proxied, from: net.Socket, to: net.Socket, onData?: (chunk: Buffer) => void) => {
  from.on("data", onData ?? ((chunk: Buffer) => {
    if (!to.write(chunk)) from.pause()
  }))
  to.on("drain", () => {
    if (!p.stalled) from.resume()
  })
  from.on("end", () => to.end())
}

/** A new client connection: refused, or paired with a connection upstream. */
const accept = (p: Proxied) => (client: net.Socket) => {
  p.accepted += 1
  client.on("error", () => {})
  if (p.refusing) return reset(client)
  const upstream = net.connect({ host: p.target.host, port: p.target.port })
  upstream.on("error", () => {})
  client.setNoDelay(true)
  upstream.setNoDelay(true)
  const pair = { client, upstream }
  p.pairs.add(pair)
  forward(p, client, upstream, fromClient(p, client, upstream))
  forward(p, upstream, client)
  if (p.stalled) {
    client.pause()
    upstream.pause()
  }
  // A reset on one side (a crashed server included) resets the other; a
  // clean close was already passed on by forward() as an end().
  const onClose = (other: net.Socket) => (hadError: boolean) => {
    if (hadError) reset(other)
    if (client.destroyed && upstream.destroyed) p.pairs.delete(pair)
  }
  client.once("close", onClose(upstream))
  upstream.once("close", onClose(client))
}

const cutAll = (p: Proxied) => {
  for (const { client, upstream } of p.pairs) {
    reset(client)
    reset(upstream)
  }
}

/** Starts a proxy on a free loopback port in front of `target`. */
export const startProxy = async (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> => {
  const p: Proxied = { target, pairs: new Set(), accepted: 0, stalled: false, refusing: false, commitCut: undefined, commitCuts: 0 }
  const server = net.createServer(accept(p))
  server.on("error", () => {})
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  return {
    host: "127.0.0.1",
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      let open = 0
      for (const { client } of p.pairs) if (!client.destroyed) open += 1
      return open
    },
    get accepted() {
      return p.accepted
    },
    get commitCuts() {
      return p.commitCuts
    },
    cutAll: () => cutAll(p),
    stall: (on) => {
      p.stalled = on
      for (const { client, upstream } of p.pairs) {
        for (const socket of [client, upstream]) {
          if (on) socket.pause()
          else socket.resume()
        }
      }
    },
    refuse: (on) => {
      p.refusing = on
    },
    cutOnCommit: (when) =>
      new Promise<void>((resolve) => {
        p.commitCut = { when, done: resolve }
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        cutAll(p)
      })
  }
}

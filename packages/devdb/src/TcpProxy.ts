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

export const startProxy = async (target: { readonly host: string; readonly port: number }): Promise<TcpProxy> => {
  const pairs = new Set<Pair>()
  let accepted = 0
  let stalled = false
  let refusing = false

  // Forwarding by hand rather than with pipe(): pipe() resumes the source on
  // 'drain', which would undo a stall.
  const forward = (from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk: Buffer) => {
      if (!to.write(chunk)) from.pause()
    })
    to.on("drain", () => {
      if (!stalled) from.resume()
    })
    from.on("end", () => to.end())
  }

  const server = net.createServer((client) => {
    accepted += 1
    client.on("error", () => {})
    if (refusing) {
      reset(client)
      return
    }
    const upstream = net.connect({ host: target.host, port: target.port })
    upstream.on("error", () => {})
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const pair = { client, upstream }
    pairs.add(pair)
    forward(client, upstream)
    forward(upstream, client)
    if (stalled) {
      client.pause()
      upstream.pause()
    }
    // A reset on one side (a crashed server included) resets the other; a
    // clean close was already passed on by forward() as an end().
    const onClose = (other: net.Socket) => (hadError: boolean) => {
      if (hadError) reset(other)
      if (client.destroyed && upstream.destroyed) pairs.delete(pair)
    }
    client.once("close", onClose(upstream))
    upstream.once("close", onClose(client))
  })
  server.on("error", () => {})

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const { port } = server.address() as net.AddressInfo

  const cutAll = () => {
    for (const { client, upstream } of pairs) {
      reset(client)
      reset(upstream)
    }
  }

  return {
    host: "127.0.0.1",
    port,
    get connections() {
      let open = 0
      for (const { client } of pairs) if (!client.destroyed) open += 1
      return open
    },
    get accepted() {
      return accepted
    },
    cutAll,
    stall: (on) => {
      stalled = on
      for (const { client, upstream } of pairs) {
        for (const socket of [client, upstream]) {
          if (on) socket.pause()
          else socket.resume()
        }
      }
    },
    refuse: (on) => {
      refusing = on
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        cutAll()
      })
  }
}

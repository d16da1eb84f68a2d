// Shared by the http tests: a throw-away PostgreSQL with the schema applied,
// and the real server started in-process on a free loopback port.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import { applyMigrations } from "@prisma-resilience/http/db"
import { ConfigProvider, Context, Effect, Exit, Layer, Logger, Redacted, Scope } from "effect"
import { HttpServer } from "effect/http"
import fsp from "node:fs/promises"
import net from "node:net"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import * as Prometheus from "../src/Prometheus.js"
import * as Readiness from "../src/Readiness.js"
import * as Server from "../src/Server.js"

export const startDatabase = async (): Promise<Cluster> => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "http-test-")) })
  try {
    await applyMigrations(cluster.url)
  } catch (error) {
    await cluster.destroy()
    throw error
  }
  return cluster
}

/** `cluster.url` with another port, e.g. a proxy's. */
export const urlVia = (cluster: Cluster, port: number) => {
  const url = new URL(cluster.url)
  url.port = String(port)
  return url.toString()
}

export const sql = async <Row extends object>(cluster: Cluster, text: string, values?: Array<unknown>) => {
  const client = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 5_000 })
  client.on("error", () => {})
  await client.connect()
  try {
    return (await client.query(text, values)).rows as Array<Row>
  } finally {
    await client.end()
  }
}

export interface RunningServer {
  readonly baseUrl: string
  readonly logs: ReadonlyArray<string>
  readonly stop: () => Promise<void>
}

/** The server of `npm start`, in-process, with `env` as its whole environment (plus PORT=0, HOST=127.0.0.1). */
export const startServer = async (databaseUrl: string, env: Record<string, string> = {}): Promise<RunningServer> => {
  const logs: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    // Effect 4's levels are "Info", "Warn"…; Effect 3's labels were "INFO", "WARN"…
    logs.push(`${logLevel.toUpperCase()} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  const scope = Effect.runSync(Scope.make())
  const layer = Server.layer.pipe(
    Layer.provide([Readiness.layerUrl(Redacted.make(databaseUrl)), Prometheus.layer])
  )
  const server = await Layer.buildWithScope(layer, scope).pipe(
    Effect.map((context) => Context.get(context, HttpServer.HttpServer)),
    Effect.provideService(
      ConfigProvider.ConfigProvider,
      ConfigProvider.fromEnvRecord({ PORT: "0", HOST: "127.0.0.1", ...env })
    ),
    Effect.provide(Logger.layer([logger])),
    Effect.runPromise
  )
  const address = server.address
  // Effect 4: an `InetAddressV4`/`V6`, or a `UnixPathAddress` (Effect 3: `TcpAddress`)
  if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    logs,
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/**
 * Polls `check` until it returns true, at most `attempts` times, `intervalMs`
 * apart; a check that throws counts as not yet.
 */
export const eventually = async (check: () => Promise<boolean>, attempts = 100, intervalMs = 100) => {
  let last: unknown
  for (let i = 0; i < attempts; i++) {
    try {
      if (await check()) return
    } catch (error) {
      last = error
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  const reason = last instanceof Error ? `; last error: ${last.message} ${String(last.cause ?? "")}` : ""
  throw new Error(`condition not met after ${attempts} attempts${reason}`)
}


export interface CuttingProxy {
  readonly port: number
  /** connections cut so far */
  readonly cuts: number
  /** cut the next connection that commits an INSERT, after the commit and before the client hears of it */
  arm(): void
  close(): Promise<void>
}

// ReadyForQuery ('Z', length 5) with status 'I': the session is idle, so the
// transaction that ran the INSERT has committed.
const readyIdle = Buffer.from([0x5a, 0, 0, 0, 5, 0x49])

/**
 * A loopback TCP proxy in front of PostgreSQL that, once armed, swallows the
 * server's answer to a committed INSERT and resets the connection: the row is
 * in the database, and the client only sees its connection die.
 */
export const startCuttingProxy = async (target: { readonly host: string; readonly port: number }): Promise<CuttingProxy> => {
  let armed = false
  let cuts = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.host, port: target.port })
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.once("close", () => sockets.delete(socket))
    }
    let insertSent = false
    client.on("data", (chunk: Buffer) => {
      if (armed && chunk.includes("INSERT INTO")) insertSent = true
      upstream.write(chunk)
    })
    upstream.on("data", (chunk: Buffer) => {
      if (armed && insertSent && chunk.includes(readyIdle)) {
        armed = false
        cuts += 1
        client.resetAndDestroy()
        upstream.resetAndDestroy()
        return
      }
      client.write(chunk)
    })
    client.on("end", () => upstream.end())
    upstream.on("end", () => client.end())
    client.once("close", () => upstream.destroy())
    upstream.once("close", () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    get cuts() {
      return cuts
    },
    arm: () => {
      armed = true
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
  }
}

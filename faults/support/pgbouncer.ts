// Debian's PgBouncer in transaction mode in front of a test cluster, started
// and stopped by the fault matrix (scripts/install-debian-tools.sh installs it).
import type { Cluster } from "@prisma-resilience/devdb"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import fs from "node:fs"
import fsp from "node:fs/promises"
import net from "node:net"
import os from "node:os"
import path from "node:path"

const candidates = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
const binary = () => candidates.find((file) => fs.existsSync(file))

/** Why PgBouncer cannot be used here, or undefined when it can. */
export const pgbouncerUnavailable = (): string | undefined => {
  if (binary() === undefined) {
    return "pgbouncer is not installed (scripts/install-debian-tools.sh installs it; CI runs that script)"
  }
  if (process.getuid?.() === 0 && osUser("postgres") === undefined) return "no postgres OS user to run pgbouncer as"
  return undefined
}

const osUser = (name: string) => {
  try {
    const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim())
    const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim())
    return { uid, gid }
  } catch {
    return undefined
  }
}

export interface PgBouncer {
  /** connection string through PgBouncer; never log it */
  readonly url: string
  readonly stop: () => Promise<void>
}

const listening = async (port: number, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.destroy()
        resolve(true)
      })
      socket.on("error", () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`pgbouncer did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`)
}

/** Starts PgBouncer (transaction pooling) on `port`, forwarding to `cluster`. */
export const startPgBouncer = async (cluster: Cluster, port: number): Promise<PgBouncer> => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "pgbouncer-"))
  await fsp.chmod(dir, 0o755)
  const ini = path.join(dir, "pgbouncer.ini")
  const users = path.join(dir, "userlist.txt")
  await fsp.writeFile(
    ini,
    [
      "[databases]",
      `${cluster.database} = host=127.0.0.1 port=${cluster.port} dbname=${cluster.database}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${users}`,
      "pool_mode = transaction",
      "default_pool_size = 10",
      "max_client_conn = 200",
      "server_connect_timeout = 2",
      "server_login_retry = 1",
      "ignore_startup_parameters = extra_float_digits,options",
      `pidfile = ${path.join(dir, "pgbouncer.pid")}`
    ].join("\n") + "\n",
    { mode: 0o600 }
  )
  await fsp.writeFile(users, `"${cluster.user}" "${cluster.password}"\n`, { mode: 0o600 })
  // PgBouncer refuses to run as root.
  const user = process.getuid?.() === 0 ? osUser("postgres") : undefined
  if (user !== undefined) {
    for (const file of [dir, ini, users]) await fsp.chown(file, user.uid, user.gid)
  }
  const logs: Array<string> = []
  const child: ChildProcess = spawn(binary()!, [ini], {
    ...(user ?? {}),
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout?.on("data", (chunk: Buffer) => logs.push(chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => logs.push(chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT")
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000)
    await exited
    clearTimeout(timer)
    await fsp.rm(dir, { recursive: true, force: true })
  }
  try {
    await listening(port, 5000)
  } catch (error) {
    await stop()
    throw new Error(`${(error as Error).message}\n${logs.join("").replaceAll(cluster.password, "***")}`)
  }
  const url = new URL(cluster.url)
  url.port = String(port)
  return { url: url.toString(), stop }
}

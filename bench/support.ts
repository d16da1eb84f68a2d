// What the benchmarks share: their own throw-away PostgreSQL, server child
// processes that are always killed, a bounded HTTP load generator on loopback,
// and the summary statistics.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import { Prisma } from "@prisma-resilience/http/db"
import { type ChildProcess, spawn } from "node:child_process"
import fs from "node:fs"
import fsp from "node:fs/promises"
import http from "node:http"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"

export const repoRoot = fileURLToPath(new URL("..", import.meta.url))
// The compiled service, as `npm start` runs it (`npm run bench` builds first).
export const serviceMain = path.join(repoRoot, process.env.BENCH_SERVICE_MAIN ?? "packages/http/dist/bundle/main.mjs")
export const minimalServer = path.join(repoRoot, "bench/minimal-server.ts")

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

export const summary = (samples: ReadonlyArray<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), min: sorted[0]!, max: sorted[sorted.length - 1]! }
}

export const fmtMs = (ms: number) => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`

/** Runs `body` against a PostgreSQL of its own under the OS temp directory, removed afterwards. */
export const withCluster = async <A>(body: (cluster: Cluster) => Promise<A>): Promise<A> => {
  const cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "bench-")) })
  try {
    return await body(cluster)
  } finally {
    await cluster.destroy()
  }
}

/** The line every table is printed under, read from the running versions rather than assumed. */
export const machine = async (cluster: Cluster) => {
  const client = new pg.Client({ connectionString: cluster.url })
  await client.connect()
  try {
    const { rows } = await client.query<{ server_version: string }>("SHOW server_version")
    return `${os.cpus().length} cores, Node ${process.version}, embedded PostgreSQL ${rows[0]!.server_version}, ` +
      `Prisma ${Prisma.prismaVersion.client}`
  } finally {
    await client.end()
  }
}

export interface ServerProcess {
  readonly pid: number
  readonly startedAt: number
  /** resolves with e.g. http://127.0.0.1:41234 once the server logged its address */
  readonly baseUrl: Promise<string>
  /** the last lines of its output, for error messages and log figures */
  readonly lines: Array<string>
  /** SIGTERM, then SIGKILL if it has not exited after 10 s */
  readonly stop: () => Promise<void>
}

const started = new Set<ChildProcess>()
// A benchmark that throws or is interrupted must not leave servers behind;
// exiting on a signal (rather than dying of it) also runs devdb's hook, which
// stops the benchmark's PostgreSQL and removes its data directory.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130))
process.once("exit", () => {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  }
})

const LOG_TAIL = 200

/**
 * Starts `node <file>` (through tsx when it is TypeScript) on a
 * free loopback port with only the environment given here, so that nothing
 * from the outer shell (a DATABASE_URL, DB_* settings) changes the figures.
 */
export const startServer = (file: string, env: Record<string, string>): ServerProcess => {
  const startedAt = performance.now()
  const child = spawn(process.execPath, file.endsWith(".ts") ? ["--import", "tsx", file] : [file], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      PORT: "0",
      HOST: "127.0.0.1",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  if (child.pid === undefined) throw new Error(`could not start ${file}`)
  started.add(child)
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const lines: Array<string> = []
  let onListening: (url: string) => void = () => {}
  const baseUrl = new Promise<string>((resolve, reject) => {
    onListening = resolve
    child.once("exit", (code, signal) =>
      reject(new Error(`${path.basename(file)} exited (${signal ?? code}) before listening:\n${lines.join("\n")}`)))
  })
  baseUrl.catch(() => {})
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffered = ""
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk
      const complete = buffered.split("\n")
      buffered = complete.pop() ?? ""
      for (const line of complete) {
        lines.push(line)
        if (lines.length > LOG_TAIL) lines.shift()
        const listening = /Listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (listening) onListening(listening[1]!)
      }
    })
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
      await exited
      clearTimeout(timer)
    }
    started.delete(child)
  }
  return { pid: child.pid, startedAt, baseUrl, lines, stop }
}

/** Peak (VmHWM) and current (VmRSS) resident set of a process, in MiB. */
export const rss = (pid: number) => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN)
  return { peakMiB: kib("VmHWM") / 1024, currentMiB: kib("VmRSS") / 1024 }
}

// USER_HZ, the unit of /proc/<pid>/stat times, is 100 on every Linux build Node supports.
const TICKS_PER_SECOND = 100

/** User + system CPU time a process has used so far, in ms. */
export const cpuMs = (pid: number) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  // The command name (field 2) may contain spaces; the fields after it do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND
}

export interface Response {
  readonly status: number
  readonly body: string
}

export const get = (url: string, agent?: http.Agent) =>
  new Promise<Response>((resolve, reject) => {
    const request = http.get(url, { agent: agent ?? false, timeout: 15_000 }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }))
      response.on("error", reject)
    })
    request.on("timeout", () => request.destroy(new Error(`GET ${url} timed out`)))
    request.on("error", reject)
  })

export interface LoadResult {
  readonly requests: number
  readonly failures: number
  readonly durationMs: number
  readonly latenciesMs: Array<number>
}

/**
 * Closed-loop load: `concurrency` clients over as many keep-alive
 * connections, each sending the next request as soon as the previous answer
 * is read, until `durationMs` has passed. Non-200 answers count as failures.
 */
export const load = async (url: string, options: { concurrency: number; durationMs: number }): Promise<LoadResult> => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency })
  const latenciesMs: Array<number> = []
  let failures = 0
  const start = performance.now()
  const deadline = start + options.durationMs
  const client = async () => {
    while (performance.now() < deadline) {
      const sent = performance.now()
      const ok = await get(url, agent).then((response) => response.status === 200, () => false)
      latenciesMs.push(performance.now() - sent)
      if (!ok) failures++
    }
  }
  try {
    await Promise.all(Array.from({ length: options.concurrency }, client))
  } finally {
    agent.destroy()
  }
  return { requests: latenciesMs.length, failures, durationMs: performance.now() - start, latenciesMs }
}

/** Polls `url` until it answers 200, every `everyMs`, for at most `timeoutMs`. */
export const until200 = async (url: string, options: { everyMs: number; timeoutMs: number }) => {
  const deadline = performance.now() + options.timeoutMs
  for (;;) {
    const response = await get(url).catch(() => undefined)
    if (response?.status === 200) return performance.now()
    if (performance.now() > deadline) throw new Error(`${url} did not answer 200 within ${options.timeoutMs} ms`)
    await sleep(options.everyMs)
  }
}

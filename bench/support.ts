// What the benchmarks share: their own throw-away PostgreSQL, server child
// processes that are always killed (TypeScript servers optionally bundled
// like the service first), a bounded HTTP load generator on loopback
// (autocannon) that also samples the server's CPU time and resident set, and
// the summary statistics.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import { Prisma } from "@prisma-resilience/http/db"
import autocannon from "autocannon"
import { build } from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import fs from "node:fs"
import fsp from "node:fs/promises"
import http from "node:http"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { bundleOptions } from "../packages/http/scripts/bundleOptions.mjs"

export const repoRoot = fileURLToPath(new URL("..", import.meta.url))
// The compiled service, as `npm start` runs it (`npm run bench` builds first).
export const serviceMain = path.join(repoRoot, process.env.BENCH_SERVICE_MAIN ?? "packages/http/dist/bundle/main.mjs")
export const minimalServer = path.join(repoRoot, "bench/minimal-server.ts")
export const effectFloorServer = path.join(repoRoot, "bench/effect-floor-server.ts")
/** Effect 4's floor; in packages/http so that `effect` resolves to the service's Effect 4. */
export const effect4FloorServer = path.join(repoRoot, "packages/http/bench/effect4-floor-server.ts")
export const fastifyServer = path.join(repoRoot, "bench/fastify-server.ts")
export const fastifyResilientServer = path.join(repoRoot, "bench/fastify-resilient-server.ts")

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

export interface StartOptions {
  /** node options before the script, e.g. V8 heap caps or `--cpu-prof` */
  readonly nodeArgs?: ReadonlyArray<string>
}

/**
 * Starts `node [nodeArgs] <file>` (through tsx when it is TypeScript) on a
 * free loopback port with only the environment given here, so that nothing
 * from the outer shell (a DATABASE_URL, DB_* settings, NODE_OPTIONS) changes
 * the figures.
 */
export const startServer = (file: string, env: Record<string, string>, options: StartOptions = {}): ServerProcess => {
  const startedAt = performance.now()
  const args = [...(options.nodeArgs ?? []), ...(file.endsWith(".ts") ? ["--import", "tsx"] : []), file]
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      PORT: "0",
      HOST: "127.0.0.1",
      // tsx would apply the root tsconfig's `paths` (the packages' sources,
      // for type checking); without them the packages resolve to their
      // compiled dist/ through their exports, as in the service.
      ...(file.endsWith(".ts") ? { TSX_TSCONFIG_PATH: path.join(repoRoot, "tsconfig.base.json") } : {}),
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

/**
 * Bundles TypeScript servers with the esbuild options of the service's bundle
 * (packages/http/scripts/bundleOptions.mjs: one ESM file each with its
 * dependencies inside, resolving workspace packages to their compiled dist/
 * as the service does; no source maps), into a temporary directory: started from there,
 * every server pays the same loader cost as the service, and none pays for
 * tsx. Returns the bundle of each file (by its path) and a function that
 * removes them.
 */
export const bundleServers = async (files: ReadonlyArray<string>) => {
  const outdir = await fsp.mkdtemp(path.join(os.tmpdir(), "bench-servers-"))
  try {
    await build({
      ...bundleOptions,
      absWorkingDir: repoRoot,
      // Named outputs: servers from different directories (bench/, a
      // package's bench/) would otherwise land under their common ancestor's paths.
      entryPoints: Object.fromEntries(files.map((file) => [path.basename(file, ".ts"), file])),
      outdir,
      // Not the root tsconfig's `paths` (which map the packages to their
      // sources for type checking): the packages' exports, as the service.
      tsconfigRaw: {}
    })
  } catch (error) {
    await fsp.rm(outdir, { recursive: true, force: true })
    throw error
  }
  const bundles = new Map(files.map((file) => [file, path.join(outdir, `${path.basename(file, ".ts")}.mjs`)]))
  return { bundles, remove: () => fsp.rm(outdir, { recursive: true, force: true }) }
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
  /** answers received (any status) */
  readonly requests: number
  readonly durationMs: number
  /** latency of every answer, any status, in ms (autocannon's own histogram has 1 ms steps) */
  readonly latenciesMs: Array<number>
  /** answers by status code */
  readonly statuses: ReadonlyMap<number, number>
  /** 503 answers that carried Retry-After */
  readonly retryAfter503: number
  /** connection errors and request timeouts (autocannon counts a timeout as both) */
  readonly errors: number
  readonly timeouts: number
  /** CPU time (user + system) the server process used during the load, when `pid` was given */
  readonly cpuMs: number
  /** VmRSS of the server sampled every 100 ms during the load (max), when `pid` was given */
  readonly peakRssMiB: number
}

/**
 * Closed-loop load with autocannon: `connections` keep-alive connections to
 * `url`, each sending its next request as soon as the previous answer is read,
 * for `durationMs`; requests time out after `timeoutS` (autocannon then opens
 * a new connection). With `pid`, also the server's CPU time over the load and
 * its resident set sampled every 100 ms. `onTick` runs every `tickMs` while
 * the load runs (e.g. to scrape metrics).
 */
export const load = async (
  url: string,
  options: {
    readonly connections: number
    readonly durationMs: number
    readonly timeoutS?: number
    readonly pid?: number
    readonly onTick?: () => void
    readonly tickMs?: number
  }
): Promise<LoadResult> => {
  const latenciesMs: Array<number> = []
  const statuses = new Map<number, number>()
  let retryAfter503 = 0
  let peakRssMiB = 0
  const pid = options.pid
  const sampleRss = () => {
    if (pid === undefined) return
    try {
      peakRssMiB = Math.max(peakRssMiB, rss(pid).currentMiB)
    } catch {
      // the server exited: its failures show in the answers
    }
  }
  const cpuBefore = pid === undefined ? 0 : cpuMs(pid)
  sampleRss()
  const sampler = setInterval(sampleRss, 100)
  const ticker = options.onTick ? setInterval(options.onTick, options.tickMs ?? 250) : undefined
  const start = performance.now()
  try {
    const instance = autocannon({
      url,
      connections: options.connections,
      duration: options.durationMs / 1000,
      timeout: options.timeoutS ?? 10,
      setupClient: (client) => {
        client.on("headers", (info) => {
          if (info.statusCode !== 503) return
          for (let i = 0; i < info.headers.length; i += 2) {
            if (info.headers[i]!.toLowerCase() === "retry-after") {
              retryAfter503++
              break
            }
          }
        })
      }
    })
    instance.on("response", (_client, statusCode, _bytes, responseTimeMs) => {
      latenciesMs.push(responseTimeMs)
      statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
    })
    // autocannon stops itself after `duration`; this bounds a run whose
    // clients hang in a way it does not notice.
    const guard = setTimeout(() => instance.stop(), options.durationMs + 30_000)
    const result = await instance
    clearTimeout(guard)
    const durationMs = performance.now() - start
    sampleRss()
    return {
      requests: latenciesMs.length,
      durationMs,
      latenciesMs,
      statuses,
      retryAfter503,
      errors: result.errors,
      timeouts: result.timeouts,
      cpuMs: pid === undefined ? 0 : cpuMs(pid) - cpuBefore,
      peakRssMiB
    }
  } finally {
    clearInterval(sampler)
    if (ticker) clearInterval(ticker)
  }
}

/** Answers of `statuses` whose code `matches`. */
export const countStatuses = (statuses: ReadonlyMap<number, number>, matches: (status: number) => boolean) =>
  [...statuses].reduce((sum, [status, count]) => (matches(status) ? sum + count : sum), 0)

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

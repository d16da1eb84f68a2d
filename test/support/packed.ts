// Helpers of the tests that install this repository's packed tarballs outside
// it, as a user does (test/artifact.test.ts, test/examples.test.ts): child
// processes bounded in time and killed by their own process group, secrets
// kept out of the log, an example app copied out, installed from the
// tarballs, generated and built with plain `tsc`, started on a loopback port.
import { type ChildProcess, spawn } from "node:child_process"
import fsp from "node:fs/promises"
import path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { expect } from "vitest"

export const repo = fileURLToPath(new URL("../..", import.meta.url))

// Prisma's CLI would otherwise call home (update check, telemetry).
export const childEnv: NodeJS.ProcessEnv = { ...process.env, CHECKPOINT_DISABLE: "1", PRISMA_HIDE_UPDATE_MESSAGE: "1" }

/** `prisma generate` is WebAssembly; the schema engine it would download first is not needed. */
export const generateEnv: NodeJS.ProcessEnv = {
  ...childEnv,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath
}

/** What copying an example out of the repository leaves behind: what its install and build make. */
export const copyFilter = (source: string) => !/[/\\](node_modules|dist|generated)$|package-lock\.json$/.test(source)

export interface Output {
  readonly stdout: string
  readonly stderr: string
}

// Each child leads its own process group, so a timeout or the cleanup also
// ends what it started (npm → sh → node).
const killGroup = (child: ChildProcess) => {
  try {
    process.kill(-child.pid!, "SIGKILL")
  } catch {
    // already gone
  }
}

/**
 * One test file's toolkit; `tag` prefixes its log lines. Every child it
 * starts is tracked until it exits, so `killAll` ends exactly those (by
 * process group), and every secret it is told of is redacted from output.
 */
export const createKit = (tag: string) => {
  const children = new Set<ChildProcess>()
  const secrets = new Set<string>()

  /** Child output can reach the CI log; a cluster's password must not. */
  const redact = (text: string) => [...secrets].reduce((acc, secret) => acc.replaceAll(secret, "***"), text)
  const tail = (text: string) => redact(text.split("\n").slice(-40).join("\n"))
  const leaks = (text: string) => [...secrets].some((secret) => text.includes(secret))

  const run = (
    command: string,
    args: ReadonlyArray<string>,
    options: { readonly cwd: string; readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv }
  ) =>
    new Promise<Output>((resolve, reject) => {
      const child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? childEnv,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      children.add(child)
      let stdout = ""
      let stderr = ""
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        killGroup(child)
      }, options.timeoutMs)
      const line = `${command} ${args.join(" ")}`
      child.on("error", (error) => {
        clearTimeout(timer)
        children.delete(child)
        reject(error)
      })
      child.on("close", (code, signal) => {
        clearTimeout(timer)
        children.delete(child)
        if (timedOut) reject(new Error(`${line}: no exit within ${options.timeoutMs} ms\n${tail(stdout)}\n${tail(stderr)}`))
        else if (code !== 0) reject(new Error(`${line}: exit ${code ?? signal}\n${tail(stdout)}\n${tail(stderr)}`))
        else resolve({ stdout, stderr })
      })
    })

  const timed = async <A>(step: string, f: () => Promise<A>): Promise<A> => {
    const started = performance.now()
    try {
      return await f()
    } finally {
      console.info(`[${tag}] ${step}: ${Math.round(performance.now() - started)} ms`)
    }
  }

  /** The one JSON line a program prints among its log lines. */
  const jsonLine = (program: string, stdout: string) => {
    const lines = stdout.split("\n").filter((line) => line.startsWith("{"))
    expect(lines, `one JSON line in\n${tail(stdout)}`).toHaveLength(1)
    console.info(`[${tag}] ${program} printed ${redact(lines[0]!)}`)
    return JSON.parse(lines[0]!)
  }

  /** `npm pack` of a workspace package (its prepack builds) into `destination`: the tarball's path and npm's report. */
  const pack = async (dir: string, destination: string) => {
    const packed = await timed(`npm pack ${path.relative(repo, dir)} (prepack builds)`, () =>
      run("npm", ["pack", "--json", "--pack-destination", destination], { cwd: dir, timeoutMs: 90_000 }))
    // prepack's own output can precede npm's JSON on stdout
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m)))
    return { tarball: path.join(destination, info.filename as string), info }
  }

  /**
   * `examples/<name>` copied into `work`, its dependencies on our packages
   * replaced by their tarballs (`ours`: name → tarball; the kernel's too, it
   * is not on the registry yet), installed, its Prisma client generated and
   * its code built with plain `tsc`, as a user would.
   */
  const buildExample = async (work: string, name: string, ours: Record<string, string>) => {
    const dir = path.join(work, `example-${name}`)
    await fsp.cp(path.join(repo, "examples", name), dir, { recursive: true, filter: copyFilter })
    const manifestPath = path.join(dir, "package.json")
    const manifest = JSON.parse(await fsp.readFile(manifestPath, "utf8"))
    for (const [pkg, tarball] of Object.entries(ours)) {
      manifest.dependencies[pkg] = `file:${tarball}`
    }
    await fsp.writeFile(manifestPath, JSON.stringify(manifest, null, 2))
    const inDir = (args: ReadonlyArray<string>, timeoutMs: number, env = childEnv) =>
      run("npx", ["--no", "--", ...args], { cwd: dir, timeoutMs, env })
    await timed(`npm install (${name})`, () =>
      run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: dir, timeoutMs: 150_000 }))
    await timed(`prisma generate (${name})`, () => inDir(["prisma", "generate"], 60_000, generateEnv))
    await timed(`tsc (${name})`, () => inDir(["tsc", "-p", "."], 120_000))
    return dir
  }

  /** The example's tables, from its prisma/schema.sql (plain SQL: `prisma migrate` would download an engine). */
  const createTables = async (url: string, dir: string) => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
    await client.connect()
    try {
      await client.query(await fsp.readFile(path.join(dir, "prisma", "schema.sql"), "utf8"))
    } finally {
      await client.end()
    }
  }

  /**
   * `node <script>` in `dir` on a free loopback port (PORT=0), once it printed
   * its address; `stop` sends SIGTERM and resolves with the exit code (or a
   * string when it did not exit in 10 s), and fails the test if a secret
   * reached the output.
   */
  const startServer = async (dir: string, script: string, address: RegExp, env: NodeJS.ProcessEnv) => {
    const server = spawn(process.execPath, [script], {
      cwd: dir,
      env: { ...childEnv, ...env, PORT: "0" },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.add(server)
    let output = ""
    server.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    server.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    const exited = new Promise<number | null>((resolve) => server.on("exit", (code) => resolve(code)))
    const stop = async () => {
      server.kill("SIGTERM")
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve("no exit in 10 s"), 10_000))])
      if (typeof code === "string") killGroup(server)
      children.delete(server)
      expect(leaks(output), "password in the output").toBe(false)
      return code
    }
    const deadline = Date.now() + 30_000
    let base: string | undefined
    while (!base && Date.now() < deadline) {
      base = address.exec(output)?.[1]
      if (!base) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    if (base === undefined) {
      await stop()
      throw new Error(`no address from ${script} in 30 s:\n${tail(output)}`)
    }
    return { base, stop, output: () => tail(output) }
  }

  return {
    run,
    timed,
    jsonLine,
    pack,
    buildExample,
    createTables,
    startServer,
    redact,
    tail,
    /** Output containing it is redacted from now on. */
    hide: (secret: string) => void secrets.add(secret),
    /** Ends every child this kit started that is still running (its whole process group). */
    killAll: () => {
      for (const child of children) killGroup(child)
    }
  }
}

/** A JSON call to `base` (a loopback address), bounded in time. */
export const caller = (base: string) =>
async (method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> => {
  const response = await fetch(`${base}${route}`, {
    method,
    signal: AbortSignal.timeout(10_000),
    ...(body !== undefined && { body: JSON.stringify(body), headers: { "content-type": "application/json" } })
  })
  return { status: response.status, body: await response.json() }
}

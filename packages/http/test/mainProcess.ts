// The compiled service as a child process, as `npm start` runs it: shared by
// the tests that signal it or need it outside the test's own event loop.
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
// The compiled service, as `npm start` runs it (`npm test` builds first).
const mainFile = fileURLToPath(new URL("../dist/bundle/main.mjs", import.meta.url))

export interface MainProcess {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly baseUrl: Promise<string>
  readonly exit: Promise<number | null>
}

const children: Array<ChildProcess> = []

export const startMain = (env: Record<string, string>): MainProcess => {
  const child = spawn(process.execPath, [mainFile], {
    cwd: repoRoot,
    // Only what the test chooses: no DATABASE_URL leaks in from the outer environment.
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      PORT: "0",
      HOST: "127.0.0.1",
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  const lines: Array<string> = []
  let onListening: (url: string) => void = () => {}
  const baseUrl = new Promise<string>((resolve, reject) => {
    onListening = resolve
    child.once("exit", (code) => reject(new Error(`main exited (${code}) before listening:\n${lines.join("\n")}`)))
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
        const listening = /Listening on (http:\/\/[\d.]+:\d+)/.exec(line)
        if (listening) onListening(listening[1]!)
      }
    })
  }
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, lines, baseUrl, exit }
}

/** Runs `body`; a failure carries the process's log, which usually says why. */
export const withLog = async (main: MainProcess, body: () => Promise<void>) => {
  try {
    await body()
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- main's log:\n${main.lines.join("\n")}`
    throw error
  }
}

export const indexOf = (lines: ReadonlyArray<string>, pattern: RegExp) => {
  const index = lines.findIndex((line) => pattern.test(line))
  expect(index, `a log line matching ${pattern}\n${lines.join("\n")}`).toBeGreaterThanOrEqual(0)
  return index
}

/** Ends the processes `startMain` started that still run (a failed test may leave one): SIGTERM, then SIGKILL after 3 s. */
export const stopChildren = async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    }
  }
}

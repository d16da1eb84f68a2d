// Process bookkeeping for the devdb tests and their exit fixtures.
import { spawn } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { isGone, procStat } from "../src/internal/processes.js"

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
  } catch {
    return ""
  }
}

/**
 * Every live process whose command line names dir (etcd, Patroni, postmasters),
 * and everything below them (PostgreSQL backends rename themselves).
 */
export const processesOf = (dir: string): ReadonlyArray<number> => {
  const all = fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => !isGone(pid))
  const found = new Set(all.filter((pid) => cmdline(pid).includes(dir)))
  for (let grown = true; grown; ) {
    grown = false
    for (const pid of all) {
      const parent = procStat(pid)?.ppid
      if (!found.has(pid) && parent !== undefined && found.has(parent)) {
        found.add(pid)
        grown = true
      }
    }
  }
  return [...found]
}

/**
 * Runs a fixture of this directory, which starts clusters and exits without
 * destroying them, and returns the JSON of its last output line: what it started.
 */
export const runExitFixture = async (name: string, args: ReadonlyArray<string> = []): Promise<unknown> => {
  const fixture = fileURLToPath(new URL(name, import.meta.url))
  const child = spawn(process.execPath, ["--import", "tsx", fixture, ...args], {
    cwd: path.dirname(fixture),
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve))
  if (code !== 0) throw new Error(`${name} exited with ${code}:\n${output}`)
  return JSON.parse(output.trim().split("\n").at(-1) ?? "")
}

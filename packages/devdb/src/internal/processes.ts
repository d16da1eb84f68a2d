// The processes of the embedded clusters and of the Patroni cluster: how they
// are spawned, stopped and killed, and the OS user they run as under root.
// Linux only: process trees are read from /proc.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process"
import fs from "node:fs"
import readline from "node:readline"

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface ProcStat {
  readonly comm: string
  readonly state: string
  readonly ppid: number
}

export const procStat = (pid: number): ProcStat | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // comm may contain spaces and parentheses, so split after its closing one
    const close = stat.lastIndexOf(")")
    const [state = "", ppid = "0"] = stat.slice(close + 2).split(" ")
    return { comm: stat.slice(stat.indexOf("(") + 1, close), state, ppid: Number(ppid) }
  } catch {
    return undefined
  }
}

// Zombies count as gone: they hold neither ports nor shared memory, and whoever
// adopted them (PID 1 in a container) may never reap them.
export const isGone = (pid: number) => {
  const stat = procStat(pid)
  return stat === undefined || stat.state === "Z" || stat.state === "X"
}

const childPids = (parent: number) =>
  fs
    .readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => procStat(pid)?.ppid === parent)

export const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/**
 * SIGKILLs a process and everything below it, and returns them all. Each is
 * stopped before its children are listed, so none can fork one that escapes
 * the list. A postmaster's backends must go with it: they stay attached to its
 * shared memory for a while, and a new postmaster on the same data directory
 * refuses to start until they are gone. The whole tree, not just the direct
 * children, because a backend's own children (an archive_command's shell)
 * would outlive the kill as well.
 */
export const killTree = (pid: number): ReadonlyArray<number> => {
  const found: number[] = []
  const visit = (target: number) => {
    signal(target, "SIGSTOP")
    found.push(target)
    for (const child of childPids(target)) visit(child)
  }
  visit(pid)
  for (const target of found) signal(target, "SIGKILL")
  return found
}

/** false when some of them are still there after timeoutMs */
export const waitGone = async (pids: ReadonlyArray<number>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (pids.some((pid) => !isGone(pid)) && Date.now() < deadline) await sleep(20)
  return pids.every(isGone)
}

// ------------------------------------------------------------------ spawned

export interface Proc {
  readonly child: ChildProcess
  /** its last output lines (the array passed to spawnProc) */
  readonly tail: string[]
  /** resolves once it has exited, or failed to start */
  readonly exited: Promise<void>
  /** resolves once it has exited and its output is read, so `tail` is complete */
  readonly closed: Promise<void>
}

export interface ProcOptions {
  /** the program, in the line that says it could not be run */
  readonly name: string
  readonly cwd: string
  readonly env: NodeJS.ProcessEnv
  readonly uid: number | undefined
  readonly gid: number | undefined
  /** keeps the last tailLines lines of its stdout and stderr */
  readonly tail: string[]
  readonly tailLines: number
  /** each line of its stdout and stderr as it comes */
  readonly onLine: (line: string) => void
}

export const spawnProc = (file: string, args: ReadonlyArray<string>, options: ProcOptions): Proc => {
  const { name, cwd, env, uid, gid, tail, tailLines } = options
  const child = spawn(file, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], uid, gid })
  const onLine = (line: string) => {
    tail.push(line)
    if (tail.length > tailLines) tail.shift()
    options.onLine(line)
  }
  readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", onLine)
  readline.createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", onLine)
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve())
    // a failed spawn emits 'error' and no 'exit'
    child.once("error", (error) => {
      onLine(`could not run ${name}: ${error.message}`)
      resolve()
    })
  })
  const closed = new Promise<void>((resolve) => {
    child.once("close", () => resolve())
    child.once("error", () => resolve())
  })
  return { child, tail, exited, closed }
}

export const isRunning = (child: ChildProcess) =>
  child.pid !== undefined && child.exitCode === null && child.signalCode === null

/**
 * SIGKILLs a running process and everything below it, and waits for the
 * process to exit and up to timeoutMs for the rest to go, so that what comes
 * next (a postmaster on the same data directory, removing the directory) does
 * not race them.
 */
export const killProc = async (proc: Proc, timeoutMs: number) => {
  if (!isRunning(proc.child)) return
  const killed = killTree(proc.child.pid as number)
  await proc.exited
  await waitGone(killed, timeoutMs)
}

/**
 * Sends `sig` and, if the process is still there after timeoutMs, kills it
 * with killProc; false when it took the kill. The timer is cleared once the
 * process exits, so that it does not keep the event loop alive for the rest of
 * timeoutMs.
 */
export const terminate = async (proc: Proc, sig: NodeJS.Signals, timeoutMs: number) => {
  if (!isRunning(proc.child)) return true
  proc.child.kill(sig)
  let timer: NodeJS.Timeout | undefined
  const exited = await Promise.race([
    proc.exited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs)
    })
  ])
  clearTimeout(timer)
  if (!exited) await killProc(proc, timeoutMs)
  return exited
}

// ------------------------------------------------------------------ OS user

export interface OsUser {
  readonly uid: number
  readonly gid: number
}

const lookupUser = (name: string): OsUser | undefined => {
  try {
    const id = (flag: string) =>
      Number(execFileSync("id", [flag, name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim())
    return { uid: id("-u"), gid: id("-g") }
  } catch {
    return undefined
  }
}

/** the OS user postgres, created if missing: PostgreSQL refuses to run as root */
export const ensurePostgresUser = (): OsUser => {
  const existing = lookupUser("postgres")
  if (existing) return existing
  // A concurrent process may win the race; its user is just as good.
  spawnSync("useradd", ["--system", "--user-group", "postgres"], { stdio: "ignore" })
  const created = lookupUser("postgres")
  if (!created) {
    throw new Error(
      "PostgreSQL refuses to run as root and the OS user postgres could not be created " +
        "(useradd --system --user-group postgres)"
    )
  }
  return created
}

/** whether `user` can search `dir` and every directory above it */
export const canTraverse = (user: OsUser, dir: string) =>
  spawnSync("test", ["-x", dir], { uid: user.uid, gid: user.gid, cwd: "/", stdio: "ignore" }).status === 0

const atExit = new Set<() => void>()
let exitHookInstalled = false

/**
 * Runs `cleanup` if this process exits before `release` is called: one
 * `exit` hook for every module (a hook runs synchronously while the process
 * ends, so `cleanup` may only signal and remove, never wait).
 */
export const onExit = (cleanup: () => void): (() => void) => {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once("exit", () => {
      for (const run of atExit) {
        try {
          run()
        } catch {
          // best effort while the process is exiting
        }
      }
    })
  }
  atExit.add(cleanup)
  return () => atExit.delete(cleanup)
}

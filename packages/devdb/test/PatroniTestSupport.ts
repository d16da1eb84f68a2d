// Process bookkeeping for Patroni.test.ts and its exit fixture.
import fs from "node:fs"

const stat = (pid: number) => {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const [state = "", ppid = "0"] = text.slice(text.lastIndexOf(")") + 2).split(" ")
    return { state, ppid: Number(ppid) }
  } catch {
    return undefined
  }
}

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
  } catch {
    return ""
  }
}

/** zombies count: whoever adopted them (PID 1 in a container) may never reap them, and they hold nothing */
export const isGone = (pid: number) => {
  const found = stat(pid)
  return found === undefined || found.state === "Z" || found.state === "X"
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
      const parent = stat(pid)?.ppid
      if (!found.has(pid) && parent !== undefined && found.has(parent)) {
        found.add(pid)
        grown = true
      }
    }
  }
  return [...found]
}

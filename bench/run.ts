// `npm run bench`: every benchmark, one after the other, each in a process of
// its own (its own PostgreSQL, metrics registry and heap), under the command
// that reproduces it alone.
import { spawn } from "node:child_process"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"

const benchDir = path.dirname(fileURLToPath(import.meta.url))
const benchmarks = [
  "../packages/core/bench/query-overhead.ts",
  "query-overhead.ts",
  "success-path.ts",
  "adapter-overhead.ts",
  "cold-start-import.ts",
  "cold-start-serverless.ts",
  "http.ts",
  "overload.ts",
  "warmup.ts",
  "recovery.ts",
  "outage.ts"
]

let current: ReturnType<typeof spawn> | undefined
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    current?.kill(signal)
    process.exitCode = 130
  })
}

const run = (file: string) =>
  new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(benchDir, file)], { stdio: "inherit" })
    current = child
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(", ")
console.log(`Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load average (1, 5, 15 min) at start: ${loadavg()}`)
const started = performance.now()
const failed: Array<string> = []
for (const file of benchmarks) {
  if (process.exitCode === 130) break
  console.log(`\n## npx tsx ${path.relative(path.dirname(benchDir), path.join(benchDir, file))}\n`)
  const t0 = performance.now()
  const code = await run(file)
  if (code !== 0) failed.push(file)
  console.log(`\n(${file}: ${((performance.now() - t0) / 1000).toFixed(0)} s${code === 0 ? "" : `, exit ${code}`})`)
}
console.log(`\nAll benchmarks: ${((performance.now() - started) / 1000).toFixed(0)} s${failed.length ? `; failed: ${failed.join(", ")}` : ""}; load average (1, 5, 15 min) at end: ${loadavg()}`)
if (failed.length) process.exitCode = 1

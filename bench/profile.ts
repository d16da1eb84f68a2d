// Where a server's CPU goes under the load of bench/http.ts: each server runs
// under `node --cpu-prof` for one round of `GET /purchase-orders/:id`
// (autocannon, keep-alive, loopback) after a warm-up, one server at a time;
// only the samples taken during the round count. Prints self time per
// request by package and the top frames by self time. A profile's time is
// time on the stack, which on a busy machine includes time the process was
// preempted (mostly inside system calls such as writev), so beside it each
// package's share is also applied to the process's real CPU time per request
// (/proc/<pid>/stat over the same round). The profiler itself slows the
// server too: compare servers within one run. Not part of `npm run bench`.
//
// The service runs unbundled here (packages/http/dist/main.js, compiled by
// `npm run build`) and the TypeScript servers through tsx, so that frames keep
// the file, and therefore the package, they come from.
//
//   npx tsx bench/profile.ts [seconds=8] [connections=16] [servers=service,floor] [top=25]
//   servers: service, floor, minimal, fastify, fastifyLayer
import { applyMigrations, makePrismaClient } from "@prisma-resilience/http/db"
import fs from "node:fs"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import {
  effectFloorServer,
  fastifyResilientServer,
  fastifyServer,
  load,
  machine,
  minimalServer,
  repoRoot,
  startServer,
  until200,
  withCluster
} from "./support.js"

const roundMs = Number(process.argv[2] ?? 8) * 1000
const connections = Number(process.argv[3] ?? 16)
const selected = (process.argv[4] ?? "service,floor").split(",")
const top = Number(process.argv[5] ?? 25)
const warmupMs = 2000

const servers: Record<string, string> = {
  service: path.join(repoRoot, "packages/http/dist/main.js"),
  floor: effectFloorServer,
  minimal: minimalServer,
  fastify: fastifyServer,
  fastifyLayer: fastifyResilientServer
}
for (const key of selected) {
  if (!(key in servers)) throw new Error(`unknown server ${key}; one of ${Object.keys(servers).join(", ")}`)
}
if (!(roundMs >= 1000 && connections >= 1 && connections <= 1000)) {
  throw new Error("usage: bench/profile.ts [seconds ≥ 1] [connections 1–1000] [servers] [top]")
}

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}
interface Profile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame }>
  readonly startTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** The package a frame's file belongs to, or what the frame is (GC, idle, node's own code). */
const packageOf = (frame: CallFrame) => {
  if (frame.url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)"
  if (frame.url.startsWith("node:")) return "node (internal JavaScript)"
  const file = frame.url.replace(/^file:\/\//, "")
  const modules = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)
  if (modules) return modules[1]!
  const workspace = /\/packages\/([^/]+)\//.exec(file)
  if (workspace) return `@prisma-resilience/${workspace[1]} (${file.includes("/generated/") ? "generated client" : "own code"})`
  return path.relative(repoRoot, file)
}

const where = (frame: CallFrame) => {
  const file = frame.url.replace(/^file:\/\//, "")
  const short = file.includes("/node_modules/") ? file.slice(file.lastIndexOf("/node_modules/") + 14) : path.relative(repoRoot, file)
  return frame.url === "" ? "" : `${short}:${frame.lineNumber + 1}`
}

/** Self time (µs) per frame and per package, counting only samples inside [fromUs, toUs] of the profile's clock. */
const selfTimes = (profile: Profile, fromUs: number, toUs: number) => {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]))
  const byFrame = new Map<string, { frame: CallFrame; us: number }>()
  const byPackage = new Map<string, number>()
  let t = profile.startTime
  let counted = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0
    t += delta
    if (t < fromUs || t > toUs) continue
    counted += delta
    const frame = frames.get(profile.samples[i]!)!
    const key = `${frame.functionName}\0${frame.url}\0${frame.lineNumber}\0${frame.columnNumber}`
    const entry = byFrame.get(key) ?? { frame, us: 0 }
    entry.us += delta
    byFrame.set(key, entry)
    byPackage.set(packageOf(frame), (byPackage.get(packageOf(frame)) ?? 0) + delta)
  }
  return { byFrame, byPackage, countedUs: counted }
}

const main = async () => {
  const profileDir = await fsp.mkdtemp(path.join(os.tmpdir(), "bench-profile-"))
  try {
    await withCluster(async (cluster) => {
      await applyMigrations(cluster.url)
      const prisma = makePrismaClient(cluster.url, { max: 1 })
      const order = await prisma.purchaseOrder.create({ data: { reference: "bench-profile", totalCents: 12_345, note: "bench" } })
      await prisma.$disconnect()
      console.log(
        `CPU profile (node --cpu-prof) of one ${roundMs / 1000} s round of GET /purchase-orders/:id at ${connections} ` +
          `connections per server, after ${warmupMs / 1000} s warm-up; ${await machine(cluster)}; load average ` +
          `${os.loadavg()[0]!.toFixed(2)} (1 min)`
      )
      for (const key of selected) {
        const dir = path.join(profileDir, key)
        const server = startServer(servers[key]!, { DATABASE_URL: cluster.url }, {
          nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${dir}`]
        })
        let requests = 0
        let cpuMs = 0
        let window: [number, number] = [0, 0]
        try {
          const base = await server.baseUrl
          const url = `${base}/purchase-orders/${order.id}`
          await until200(url, { everyMs: 20, timeoutMs: 30_000 })
          await load(url, { connections, durationMs: warmupMs })
          // The profile's timestamps are V8's monotonic clock in µs, as process.hrtime on Linux.
          const from = Number(process.hrtime.bigint() / 1000n)
          const result = await load(url, { connections, durationMs: roundMs, pid: server.pid })
          window = [from, Number(process.hrtime.bigint() / 1000n)]
          requests = result.requests
          cpuMs = result.cpuMs
        } finally {
          await server.stop()
        }
        const file = fs.readdirSync(dir).find((name) => name.endsWith(".cpuprofile"))
        if (!file) throw new Error(`${key}: no profile written in ${dir}`)
        const profile = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Profile
        let times = selfTimes(profile, window[0], window[1])
        let note = ""
        if (times.countedUs < 0.5 * (window[1] - window[0])) {
          times = selfTimes(profile, -Infinity, Infinity)
          note = " (the profile's clock did not match: all samples, start-up included)"
        }
        const perRequest = (us: number) => `${(us / requests).toFixed(1)} µs`
        const busy = [...times.byPackage].filter(([name]) => name !== "(idle)").reduce((sum, [, us]) => sum + us, 0)
        console.log("")
        const cpuUs = (cpuMs * 1000) / requests
        console.log(
          `### ${key}: ${requests} requests; profile: ${perRequest(busy)} on the stack per request; ` +
            `/proc: ${cpuUs.toFixed(0)} µs CPU per request${note}`
        )
        console.log("")
        console.log(`| package | profile self time per request | share | share × CPU per request |`)
        console.log(`|---|---|---|---|`)
        for (const [name, us] of [...times.byPackage].sort((a, b) => b[1] - a[1])) {
          if (name === "(idle)") continue
          console.log(`| ${name} | ${perRequest(us)} | ${((100 * us) / busy).toFixed(1)} % | ${((cpuUs * us) / busy).toFixed(1)} µs |`)
        }
        console.log("")
        console.log(`| frame | where | self time per request |`)
        console.log(`|---|---|---|`)
        for (const { frame, us } of [...times.byFrame.values()].filter((e) => e.frame.functionName !== "(idle)").sort((a, b) => b.us - a.us).slice(0, top)) {
          console.log(`| ${frame.functionName || "(anonymous)"} | ${where(frame)} | ${perRequest(us)} |`)
        }
      }
    })
  } finally {
    await fsp.rm(profileDir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

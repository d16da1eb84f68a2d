// The cold start of a serverless function (issue 19): examples/serverless,
// installed from the packed tarballs as a user installs it, each invocation a
// fresh `node` process as a platform's cold start is: process start → first
// Response, and the resident memory then, for the same handler on a plain
// PrismaClient and on createResilientPrisma (`@prisma-resilience/core/prisma`),
// unbundled and as one esbuild bundle each. Interleaved rounds; medians with
// their range, the differences against issue 19's goals.
//
//   npx tsx bench/cold-start-serverless.ts [rounds=7]
import { execFileSync } from "node:child_process"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { build } from "esbuild"
import pg from "pg"
import { fmtMs, machine, repoRoot, summary, withCluster } from "./support.js"

const rounds = Number(process.argv[2] ?? 7)
const quiet = { stdio: ["ignore", "pipe", "pipe"] as ["ignore", "pipe", "pipe"] }
const env = { ...process.env, CHECKPOINT_DISABLE: "1", PRISMA_HIDE_UPDATE_MESSAGE: "1" }

/** examples/serverless outside the repository, on the tarballs of the kernel and core. */
const install = async (work: string) => {
  const packed = (pkg: string) => {
    const out = execFileSync("npm", ["pack", "--json", "--pack-destination", work], { cwd: path.join(repoRoot, "packages", pkg), ...quiet })
    const text = out.toString()
    return path.join(work, JSON.parse(text.slice(text.search(/^\[/m)))[0].filename)
  }
  const kernel = packed("kernel")
  const core = packed("core")
  const app = path.join(work, "serverless")
  await fsp.cp(path.join(repoRoot, "examples", "serverless"), app, {
    recursive: true,
    filter: (source) => !/[/\\](node_modules|dist|generated)$|package-lock\.json$/.test(source)
  })
  const manifest = JSON.parse(await fsp.readFile(path.join(app, "package.json"), "utf8"))
  manifest.dependencies["@prisma-resilience/core"] = `file:${core}`
  manifest.dependencies["@prisma-resilience/kernel"] = `file:${kernel}`
  await fsp.writeFile(path.join(app, "package.json"), JSON.stringify(manifest, null, 2))
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: app, env, ...quiet })
  execFileSync("npx", ["--no", "--", "prisma", "generate"], {
    cwd: app,
    env: { ...env, PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath },
    ...quiet
  })
  execFileSync("npx", ["--no", "--", "tsc", "-p", "."], { cwd: app, ...quiet })
  return app
}

/** One bundle per handler, as a platform's bundler makes it; undefined (with the reason) when esbuild cannot. */
const bundle = async (app: string, handler: string) => {
  const outfile = path.join(app, "bundle", handler.replace(/\.js$/, ".mjs"))
  try {
    await build({
      entryPoints: [path.join(app, "dist", handler)],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      logLevel: "silent",
      // CommonJS dependencies (pg) call require(): give the ESM bundle one.
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
    })
    return outfile
  } catch (error) {
    console.log(`esbuild could not bundle ${handler}: ${(error as Error).message.split("\n")[0]}`)
    return undefined
  }
}

interface Sample {
  readonly status: number
  readonly firstResponseMs: number
  readonly rssMiB: number
}

const invoke = (app: string, handler: string, url: string): Sample => {
  const out = execFileSync(process.execPath, [path.join(app, "dist", "invoke.js"), handler, "/users"], {
    cwd: app,
    env: { ...env, DATABASE_URL: url },
    ...quiet,
    timeout: 30_000
  })
  const sample = JSON.parse(out.toString().trim().split("\n").at(-1)!) as Sample
  if (sample.status !== 200) throw new Error(`${handler} answered ${sample.status}`)
  return sample
}

const loadAtStart = os.loadavg()[0]!.toFixed(2)
const work = await fsp.mkdtemp(path.join(os.tmpdir(), "cold-start-"))
try {
  const app = await install(work)
  const variants: Record<string, string | undefined> = {
    "raw PrismaClient": path.join(app, "dist", "handler-raw.js"),
    "createResilientPrisma": path.join(app, "dist", "handler.js"),
    "raw PrismaClient, bundled": await bundle(app, "handler-raw.js"),
    "createResilientPrisma, bundled": await bundle(app, "handler.js")
  }
  await withCluster(async (cluster) => {
    const client = new pg.Client({ connectionString: cluster.url })
    await client.connect()
    await client.query(await fsp.readFile(path.join(app, "prisma", "schema.sql"), "utf8"))
    await client.end()
    const samples = new Map<string, Array<Sample>>()
    for (let round = 0; round < rounds; round++) {
      for (const [name, handler] of Object.entries(variants)) {
        if (handler === undefined) continue
        samples.set(name, [...(samples.get(name) ?? []), invoke(app, handler, cluster.url)])
      }
    }
    const load = os.loadavg()[0]!.toFixed(2)
    console.log(`Serverless cold start, examples/serverless from the tarballs; ${rounds} interleaved rounds, a fresh process each; ${await machine(cluster)}; load average ${loadAtStart} at start, ${load} at end (1 min)`)
    console.log("| handler | process start → first Response: median (min–max) | RSS then: median (min–max) |")
    console.log("|---|---|---|")
    const medians = new Map<string, { ms: number; mib: number }>()
    for (const [name, list] of samples) {
      const ms = summary(list.map((s) => s.firstResponseMs))
      const mib = summary(list.map((s) => s.rssMiB))
      medians.set(name, { ms: ms.median, mib: mib.median })
      console.log(
        `| ${name} | ${fmtMs(ms.median)} (${fmtMs(ms.min)}–${fmtMs(ms.max)}) | ${mib.median.toFixed(1)} MiB (${mib.min.toFixed(1)}–${mib.max.toFixed(1)}) |`
      )
    }
    // Issue 19's goals for adapter import + first query over raw Prisma.
    const goals = { "": { ms: 150, mib: 20 }, ", bundled": { ms: 50, mib: 20 } }
    for (const [suffix, goal] of Object.entries(goals)) {
      const raw = samples.get(`raw PrismaClient${suffix}`)
      const resilient = samples.get(`createResilientPrisma${suffix}`)
      if (!raw || !resilient) continue
      const dMs = medians.get(`createResilientPrisma${suffix}`)!.ms - medians.get(`raw PrismaClient${suffix}`)!.ms
      const dMiB = medians.get(`createResilientPrisma${suffix}`)!.mib - medians.get(`raw PrismaClient${suffix}`)!.mib
      // Rounds are interleaved: the difference within each round is less exposed to the machine's drift.
      const paired = summary(resilient.map((s, i) => s.firstResponseMs - raw[i]!.firstResponseMs)).median
      const met = (value: number, limit: number) => (value <= limit ? "met" : "not met")
      const sign = (value: number) => (value < 0 ? "−" : "+")
      console.log(
        `resilient − raw${suffix || ", unbundled"}: ${sign(dMs)}${fmtMs(Math.abs(dMs))} ` +
          `(median of the rounds' differences ${sign(paired)}${fmtMs(Math.abs(paired))}), ` +
          `${sign(dMiB)}${Math.abs(dMiB).toFixed(1)} MiB; goal ≤ ${goal.ms} ms: ${met(dMs, goal.ms)}, ≤ ${goal.mib} MiB: ${met(dMiB, goal.mib)}`
      )
    }
  })
} finally {
  await fsp.rm(work, { recursive: true, force: true })
}

// Cold start of the Promise adapter's import, each sample a fresh Node
// process: the time to import the compiled `@prisma-resilience/core` (Effect 4)
// and `@prisma-resilience/core-effect3`, interleaved (what
// `createResilientPrisma` costs before its first query, over an app that
// already loads Prisma) and the resident memory it adds. The first query's
// own cost is not included: it needs a database (see the goals: the
// import is nearly all of the gap).
//
//   npx tsx bench/cold-start-import.ts [samples=7]
import { execFileSync } from "node:child_process"

const samples = Number(process.argv[2] ?? 7)
const targets = {
  "@prisma-resilience/core/prisma (Effect 4, the adapter alone)": new URL("../packages/core/dist/prisma.js", import.meta.url).href,
  "@prisma-resilience/core (Effect 4)": new URL("../packages/core/dist/index.js", import.meta.url).href,
  "@prisma-resilience/core-effect3": new URL("../packages/core-effect3/dist/index.js", import.meta.url).href
}
const prisma = import.meta.resolve("@prisma/client/runtime/client")

// One process: Prisma's runtime first (an app has it anyway), then the adapter.
const script = `
const t0 = performance.now(); await import(${JSON.stringify(prisma)}); const t1 = performance.now()
const rss0 = process.memoryUsage().rss
const t2 = performance.now(); await import(process.env.TARGET); const t3 = performance.now()
globalThis.gc?.(); const rss1 = process.memoryUsage().rss
console.log(JSON.stringify({ prismaMs: t1 - t0, coreMs: t3 - t2, rssMiB: (rss1 - rss0) / 2 ** 20 }))
`
const median = (xs: Array<number>) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
type Row = { prismaMs: number; coreMs: number; rssMiB: number }
const rows = new Map<string, Array<Row>>(Object.keys(targets).map((name) => [name, []]))
for (let i = 0; i < samples; i++) {
  for (const [name, target] of Object.entries(targets)) {
    const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
      env: { ...process.env, TARGET: target }
    })
    rows.get(name)!.push(JSON.parse(out.toString()))
  }
}
console.log(`Adapter import in a fresh process, median of ${samples}, interleaved; Node ${process.version}`)
const prismaMs = [...rows.values()].flat().map((r) => r.prismaMs)
console.log(`import @prisma/client runtime   ${median(prismaMs).toFixed(0)} ms`)
for (const [name, sampled] of rows) {
  console.log(`import ${name}  +${median(sampled.map((r) => r.coreMs)).toFixed(0)} ms, +${median(sampled.map((r) => r.rssMiB)).toFixed(1)} MiB RSS`)
}

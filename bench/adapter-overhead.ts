// Per-call cost of the Promise adapter (`createResilientPrisma`) on the
// success path, with I/O faked: the client's query resolves on the next turn
// of the event loop (setImmediate), 16 calls in flight, and the process's
// CPU time per call is compared with calling the fake client directly. With
// the database faked the figures are stable on a busy machine, unlike HTTP
// rounds; they do not include what real round trips add (cold caches).
//
//   npx tsx bench/adapter-overhead.ts [calls=100000] [rounds=5]
import type { PrismaClientLike } from "@prisma-resilience/core"
import { summary } from "./support.js"

const calls = Number(process.argv[2] ?? 100_000)
const rounds = Number(process.argv[3] ?? 5)
const inFlight = 16

const row = { id: "00000000-0000-0000-0000-000000000000", totalCents: 1 }
const client = {
  $connect: async () => {},
  $disconnect: async () => {},
  $queryRaw: async () => [1],
  $transaction: async () => 1,
  purchaseOrder: { findUnique: (_args: unknown) => new Promise((resolve) => setImmediate(resolve, row)) }
}
// The compiled library, as users run it: under tsx the import would resolve
// to the sources, transformed with a name helper call per closure.
// Both cores side by side: each resolves its own effect (4 and 3).
type Adapter = typeof import("@prisma-resilience/core")
const load = async (dist: string): Promise<Adapter> => await import(new URL(dist, import.meta.url).href)
const { createResilientPrisma } = await load("../packages/core/dist/prisma.js")
const { createResilientPrisma: createEffect3 } = await load("../packages/core-effect3/dist/index.js")
// Nothing connects: the URL only satisfies the check a real app passes with DATABASE_URL.
const options = { url: "postgresql://bench@127.0.0.1:5432/bench", client: () => client as typeof client & PrismaClientLike }
const db = createResilientPrisma(options)
const db3 = createEffect3(options)

const paths: Record<string, () => PromiseLike<unknown>> = {
  "client directly": () => client.purchaseOrder.findUnique({ where: { id: row.id } }),
  "core (Effect 4)": () => db.purchaseOrder.findUnique({ where: { id: row.id } }),
  "core-effect3": () => db3.purchaseOrder.findUnique({ where: { id: row.id } })
}

const cpuPerCall = async (call: () => PromiseLike<unknown>) => {
  const before = process.cpuUsage()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    for (let i = 0; i < calls / inFlight; i++) await call()
  }))
  const used = process.cpuUsage(before)
  return (used.user + used.system) / calls
}

const main = async () => {
  await Promise.all([db.$ready(), db3.$ready()])
  const results = new Map(Object.keys(paths).map((name) => [name, [] as Array<number>]))
  // The first round warms the JIT and is not counted.
  for (let round = 0; round <= rounds; round++) {
    for (const [name, call] of Object.entries(paths)) {
      const us = await cpuPerCall(call)
      if (round > 0) results.get(name)!.push(us)
    }
  }
  await Promise.all([db.$disconnect(), db3.$disconnect()])
  console.log(
    `Promise adapter success path, I/O faked (setImmediate), ${inFlight} calls in flight, ${calls} calls × ${rounds} rounds, ` +
      `CPU time per call, median of rounds; Node ${process.version}`
  )
  const base = summary(results.get("client directly")!).median
  for (const [name, samples] of results) {
    const median = summary(samples).median
    console.log(`${name.padEnd(24)} ${median.toFixed(2)} µs/call  (+${(median - base).toFixed(2)} µs)`)
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})

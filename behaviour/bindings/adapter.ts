// The Promise adapter (`createResilientPrisma`) as a binding. Its rejections
// are read for their tag: the error's own `_tag` (core's DatabaseError), or,
// for an error without one (Prisma's own error objects), the tag that
// `classify` gives it.
import { classify, createResilientPrisma, type HealthError } from "@prisma-resilience/core-effect3"
import { makePrismaClient, poolStats } from "../../packages/core-effect3/test/fixture/client.js"
import type { Binding, BoundDatabase, Health, OpenOptions } from "../binding.js"

const tagged = (error: unknown): unknown =>
  typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string"
    ? error
    : classify(error)

const rethrow = (error: unknown): never => {
  throw tagged(error)
}

const open = (options: OpenOptions): BoundDatabase => {
  const { url, replicaUrls, name, settings = {} } = options
  const db = createResilientPrisma({
    ...settings,
    client: (pool) => makePrismaClient(url, pool),
    poolStats,
    url,
    replicaUrls,
    name
  })
  return {
    query: (f, queryOptions) => db.$query(f, queryOptions).catch(rethrow),
    transaction: (f, txOptions) => db.$transaction(f, txOptions).catch(rethrow),
    health: () =>
      db.$health().then(
        (): Health => ({ status: "pass" }),
        (error: HealthError): Health => ({ status: "fail", reason: error.reason })
      ),
    close: () => db.$disconnect()
  }
}

export const adapterBinding: Binding = { name: "adapter (createResilientPrisma)", open }

// The Promise adapter (`createResilientPrisma`) as a binding. Its rejections
// are read for their tag: the error's own `_tag` (core's DatabaseError), or,
// for an error without one (Prisma's own error objects), the tag that
// `classify` gives it.
import * as Core from "@prisma-resilience/core"
import * as CoreEffect3 from "@prisma-resilience/core-effect3"
import { makePrismaClient, poolStats } from "../../packages/core-effect3/test/fixture/client.js"
import type { Binding, BoundDatabase, Health, OpenOptions } from "../binding.js"

type Library = Pick<typeof Core, "classify" | "createResilientPrisma">

const bindingOf = (name: string, { classify, createResilientPrisma }: Library): Binding => {
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
          (error: Core.HealthError): Health => ({ status: "fail", reason: error.reason })
        ),
      close: () => db.$disconnect()
    }
  }

  return { name, open }
}

/** `createResilientPrisma` of core (Effect 4). */
export const adapterBinding: Binding = bindingOf("adapter (core, Effect 4)", Core)

/** `createResilientPrisma` of core-effect3: the same Promise API on Effect 3. */
export const adapterEffect3Binding: Binding = bindingOf(
  "adapter (core-effect3, Effect 3)",
  CoreEffect3 as unknown as Library
)

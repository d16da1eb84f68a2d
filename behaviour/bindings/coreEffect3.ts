// Core on Effect 3 as a binding: `Database.layer` in a ManagedRuntime, built
// at once (the warm-up). As the service's readiness does, a call made during
// warm-up waits for it at most DB_WARMUP_WAIT_MS and keeps the deadline it
// had when it was made; health answers `warming` until the layer is built.
import {
  ConnectionError,
  Database,
  type DatabaseService,
  health,
  RetryPolicy
} from "@prisma-resilience/core-effect3"
import { Cause, Effect, Exit, ManagedRuntime, Option } from "effect"
import { makePrismaClient, poolStats, type PrismaClient } from "../../packages/core-effect3/test/fixture/client.js"
import type { Binding, BoundDatabase, Health, OpenOptions } from "../binding.js"

type Db = DatabaseService<PrismaClient>

const notSent = (code: string, message: string) =>
  new ConnectionError({ operation: "unknown", attempt: 0, safety: "before-send", code, message, cause: undefined })

// The typed failure itself, never Effect's FiberFailure wrapper.
const failureOf = (cause: Cause.Cause<unknown>): unknown =>
  Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))

const open = (options: OpenOptions): BoundDatabase => {
  const { url, replicaUrls, name, settings = {} } = options
  const runtime = ManagedRuntime.make(Database.layer({
    ...settings,
    client: (pool) => makePrismaClient(url, pool),
    poolStats,
    url,
    replicaUrls,
    name
  }))
  const retry = { ...RetryPolicy.defaults, ...settings.retry }
  let state: "warming" | "ready" | "failed" = "warming"
  const built = runtime.runtime().then(
    () => (state = "ready"),
    () => (state = "failed")
  )

  // `budgetMs`: the call's own budget, when it overrides the database's
  const run = async <A>(use: (db: Db) => Effect.Effect<A, unknown>, budgetMs = retry.requestBudgetMs): Promise<A> => {
    let effect = Effect.flatMap(Database, (db) => use(db as Db))
    if (state === "warming") {
      // the wait is part of the request: its deadline counts from now
      const deadline = Date.now() + budgetMs
      const waitMs = Math.min(retry.warmupWaitMs, budgetMs)
      let timer: NodeJS.Timeout | undefined
      const waited = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), waitMs)))
      const outcome = await Promise.race([built, waited])
      clearTimeout(timer)
      if (outcome === "timeout") throw notSent("WARMUP_WAIT", `warm-up still running after waiting ${waitMs} ms`)
      effect = Effect.locally(effect, RetryPolicy.currentDeadline, deadline)
    }
    if (state === "failed") throw notSent("WARMUP_FAILED", "the database is not ready: warm-up failed")
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw failureOf(exit.cause)
  }

  return {
    query: (f, queryOptions) => run((db) => db.query(f, queryOptions), queryOptions?.retry?.requestBudgetMs),
    transaction: (f, txOptions) => run((db) => db.transaction(f, txOptions)),
    health: async (): Promise<Health> => {
      if (state === "warming") return { status: "fail", reason: "warming" }
      if (state === "failed") return { status: "fail", reason: "unreachable" }
      const exit = await runtime.runPromiseExit(health)
      if (Exit.isSuccess(exit)) return { status: "pass" }
      const error = failureOf(exit.cause) as { reason?: string }
      return { status: "fail", reason: error.reason ?? "unknown" }
    },
    close: () => runtime.dispose()
  }
}

export const coreBinding: Binding = { name: "core (Effect 3)", open }

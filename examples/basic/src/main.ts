import { PrismaPg } from "@prisma/adapter-pg"
import { Database } from "@prisma-resilience/core"
import { Config, Effect, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { PrismaClient } from "./generated/prisma/client.js"

// Declared once: every accessor below knows the client's type.
class Db extends Database.Tag("Db")<Db, PrismaClient>() {}

// Warm-up: connects and probes before anything can use Db. Retry, timeout and
// pool settings come from DB_* environment variables (defaults documented).
const DbLive = Db.layerConfig({
  client: (pool) =>
    new PrismaClient({ adapter: new PrismaPg({ connectionString: Redacted.value(url), ...pool }) })
})

const program = Effect.gen(function*() {
  const health = yield* Db.health
  const account = yield* Db.query((c) =>
    c.account.create({ data: { email: `${randomUUID()}@example.com`, balanceCents: 10_000 } })
  )
  // Run again as a whole on serialization failures and deadlocks.
  const transfer = yield* Db.transaction(async (tx) => {
    const current = await tx.account.findUniqueOrThrow({ where: { id: account.id } })
    return tx.account.update({ where: { id: account.id }, data: { balanceCents: current.balanceCents - 2_500 } })
  }, { isolationLevel: "Serializable" })
  console.log(JSON.stringify({ health, account, transfer }))
})

Effect.runPromise(program.pipe(Effect.provide(DbLive)))

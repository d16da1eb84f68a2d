import { PrismaPg } from "@prisma/adapter-pg"
import { Database } from "@prisma-resilience/core-effect3"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { PrismaClient } from "./generated/prisma/client.js"

// Declared once: the accessors below know the client's type.
class Db extends Database.Tag("Db")<Db, PrismaClient>() {}

// The warm-up: connects and probes before anything can use Db. DATABASE_URL
// (a multi-host failover string too) and the DB_* retry, timeout and pool
// settings are read from the environment; `pool` carries them, the node to
// connect to included: hand it to PrismaPg whole, never override its
// connectionString, or failover cannot move the client to the new writer.
const DbLive = Db.layerConfig({
  client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) })
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

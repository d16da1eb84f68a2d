import { PrismaPg } from "@prisma/adapter-pg"
import { Database } from "@prisma-resilience/core"
import { Config, Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import { PrismaClient } from "./generated/prisma/client.js"

// Declared once: the accessors below know the client's type.
class Db extends Database.Tag("Db")<Db, PrismaClient>() {}

// The warm-up: connects and probes before anything can use Db. Retry, timeout
// and pool settings come from the DB_* environment variables; `pool` carries
// the pool ones, including a connect timeout.
const DbLive = Layer.unwrapEffect(
  Effect.map(Config.redacted("DATABASE_URL"), (url) =>
    Db.layerConfig({
      client: (pool) => new PrismaClient({ adapter: new PrismaPg({ ...pool, connectionString: Redacted.value(url) }) })
    }))
)

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

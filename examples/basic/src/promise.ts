import { PrismaPg } from "@prisma/adapter-pg"
import { createResilientPrisma } from "@prisma-resilience/core"
import { randomUUID } from "node:crypto"
import { PrismaClient } from "./generated/prisma/client.js"

// The same warm-up, retry layer and health as the Effect API, for ordinary
// async code: model calls keep Prisma's shape. DATABASE_URL is read as
// layerConfig reads it and reaches the factory as `pool.connectionString`.
const db = createResilientPrisma({
  client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) })
})

try {
  const warmup = await db.$ready()
  const email = `${randomUUID()}@example.com`
  await db.account.create({ data: { email, balanceCents: 5_000 } })
  const account = await db.account.findUnique({ where: { email } })
  const transfer = await db.$transaction(async (tx) => {
    const current = await tx.account.findUniqueOrThrow({ where: { email } })
    return tx.account.update({ where: { email }, data: { balanceCents: current.balanceCents + 1_000 } })
  })
  const health = await db.$health()
  console.log(JSON.stringify({ warmup, health, account, transfer }))
} finally {
  await db.$disconnect()
}

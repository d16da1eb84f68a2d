// A Fastify 5 + Prisma 7 API on createResilientPrisma. Moving an app over is
// the import and the `new PrismaClient` line: the client keeps its own types
// and Prisma's own errors, so the P2002 check below is what the app had.
import { PrismaPg } from "@prisma/adapter-pg"
import { createResilientPrisma, type HealthError } from "@prisma-resilience/core/prisma"
import Fastify from "fastify"
import { Prisma, PrismaClient } from "./generated/prisma/client.js"

// Reads DATABASE_URL and the DB_* settings; `pool` is the node the layer
// chose (the new writer after a failover): hand it to PrismaPg whole.
const db = createResilientPrisma({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })

const app = Fastify()

app.post<{ Body: { email: string; name: string } }>("/users", {
  schema: {
    body: {
      type: "object",
      required: ["email", "name"],
      properties: { email: { type: "string" }, name: { type: "string" } },
      additionalProperties: false
    }
  }
}, async (request, reply) => {
  try {
    const user = await db.user.create({ data: request.body })
    return reply.code(201).send(user)
  } catch (error) {
    // A unique violation is an answer, never retried, and still Prisma's own error.
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") {
      return reply.code(409).send({ error: "email taken" })
    }
    throw error
  }
})

app.get<{ Params: { id: string } }>("/users/:id", async (request, reply) => {
  const user = await db.user.findUnique({ where: { id: Number(request.params.id) } })
  return user ?? reply.code(404).send({ error: "not found" })
})

// Fails before warm-up and while queries would fail; passes again by itself.
app.get("/health", async (_request, reply) => {
  try {
    return await db.$health()
  } catch (error) {
    return reply.code(503).send({ status: "fail", reason: (error as HealthError).reason })
  }
})

app.addHook("onClose", () => db.$disconnect())
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => void app.close())

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? "127.0.0.1" })
console.log(`listening on ${address}`)

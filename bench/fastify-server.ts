// Fastify + raw Prisma for bench/http.ts: `GET /purchase-orders/:id` with the
// same PrismaClient (the service's makePrismaClient, the service's default
// pool settings), the same query, `select` and JSON as
// bench/minimal-server.ts. Fastify's defaults (no logger, no schema): the
// fastest common framework with nothing of this project in the request path.
//
//   DATABASE_URL=... PORT=0 HOST=127.0.0.1 node --import tsx bench/fastify-server.ts
import Fastify from "fastify"
import { makeClient, orderColumns as columns } from "./server-env.js"

const prisma = makeClient()

const app = Fastify({ logger: false })

app.get<{ Params: { id: string } }>("/purchase-orders/:id", async (request, reply) => {
  const { id } = request.params
  const order = await prisma.purchaseOrder.findUnique({ where: { id }, select: columns }).catch(() => undefined)
  if (order === undefined) return reply.code(503).send({ _tag: "DatabaseUnavailable" })
  if (order === null) return reply.code(404).send({ _tag: "PurchaseOrderNotFound", id })
  return order
})

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? "127.0.0.1" })
console.log(`Listening on ${address}`)

process.once("SIGTERM", () => {
  void app.close().finally(() => prisma.$disconnect()).finally(() => process.exit(0))
})

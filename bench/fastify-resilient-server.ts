// Fastify + the resilience layer for bench/http.ts: bench/fastify-server.ts
// with the query sent through `createResilientPrisma` (core's Promise
// adapter: warm-up, attempt timeout, retries, request budget, retry budget,
// circuit breaker, metrics) built from the same client factory (the
// service's makePrismaClient, given the layer's pool settings: max 10,
// connect timeout 2 s, idle timeout 10 s by default). Everything else —
// route, `select`, JSON — is the same, so the difference is the layer.
//
//   DATABASE_URL=... PORT=0 HOST=127.0.0.1 node --import tsx bench/fastify-resilient-server.ts
import { createResilientPrisma } from "@prisma-resilience/core-effect3"
import { makePrismaClient } from "@prisma-resilience/http/db"
import Fastify from "fastify"
import { databaseUrl, orderColumns as columns } from "./server-env.js"

const db = createResilientPrisma({ url: databaseUrl, client: (pool) => makePrismaClient(databaseUrl, pool) })

const app = Fastify({ logger: false })

app.get<{ Params: { id: string } }>("/purchase-orders/:id", async (request, reply) => {
  const { id } = request.params
  const order = await db.purchaseOrder.findUnique({ where: { id }, select: columns }).then(
    (row) => row,
    (error: unknown) => ({ error: error as { readonly _tag?: string } })
  )
  if (order === null) return reply.code(404).send({ _tag: "PurchaseOrderNotFound", id })
  if ("error" in order) {
    // A query the database refused is no outage; everything else the layer
    // gave up on (connection, timeout, open breaker) is, and may be retried.
    if (order.error._tag === "QueryError") return reply.code(500).send({ _tag: "QueryError" })
    return reply.code(503).header("retry-after", "1").send({ _tag: "DatabaseUnavailable" })
  }
  return order
})

// Like the service: listen at once; requests that arrive during warm-up wait for it.
const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? "127.0.0.1" })
console.log(`Listening on ${address}`)

process.once("SIGTERM", () => {
  void app.close().finally(() => db.$disconnect()).finally(() => process.exit(0))
})

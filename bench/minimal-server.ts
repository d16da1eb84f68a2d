// The baseline of bench/http.ts: `GET /purchase-orders/:id` with nothing but
// node:http and the same PrismaClient as the service (its
// makePrismaClient, the service's default pool settings), the same query and
// the same JSON. No validation, retries, timeouts, metrics or health: what the
// service costs on top of this is what the benchmark measures.
//
//   DATABASE_URL=... PORT=0 HOST=127.0.0.1 node --import tsx bench/minimal-server.ts
import http from "node:http"
import { makeClient, orderColumns as columns } from "./server-env.js"

const prisma = makeClient()

const send = (response: http.ServerResponse, status: number, body: unknown) => {
  const json = JSON.stringify(body)
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(json) })
  response.end(json)
}

const server = http.createServer((request, response) => {
  const match = request.method === "GET" ? /^\/purchase-orders\/([^/?]+)$/.exec(request.url ?? "") : null
  if (!match) return send(response, 404, { _tag: "RouteNotFound" })
  const id = decodeURIComponent(match[1]!)
  prisma.purchaseOrder.findUnique({ where: { id }, select: columns }).then(
    (order) => (order ? send(response, 200, order) : send(response, 404, { _tag: "PurchaseOrderNotFound", id })),
    () => send(response, 503, { _tag: "DatabaseUnavailable" })
  )
})

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? "127.0.0.1", () => {
  const address = server.address() as { address: string; port: number }
  console.log(`Listening on http://${address.address}:${address.port}`)
})

process.once("SIGTERM", () => {
  server.close()
  server.closeAllConnections()
  void prisma.$disconnect().finally(() => process.exit(0))
})

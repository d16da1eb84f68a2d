// The Effect floor of bench/http.ts: `GET /purchase-orders/:id` served by
// @effect/platform's `HttpRouter` on `NodeHttpServer`, with the query run as
// `Effect.promise(() => prisma.purchaseOrder.findUnique(…))` — the same
// PrismaClient (the service's makePrismaClient, the service's default pool
// settings), the same `select` and the same JSON as bench/minimal-server.ts.
// No HttpApi, schema, validation, retries, timeouts, metrics or health: the
// least an Effect HTTP server pays for this request, which the service is
// measured against.
//
//   DATABASE_URL=... PORT=0 HOST=127.0.0.1 node --import tsx bench/effect-floor-server.ts
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { makeClient, orderColumns as columns } from "./server-env.js"

const prisma = makeClient()

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/purchase-orders/:id",
    Effect.flatMap(HttpRouter.params, ({ id = "" }) =>
      Effect.map(
        Effect.promise(() => prisma.purchaseOrder.findUnique({ where: { id }, select: columns })),
        (order) =>
          order
            ? HttpServerResponse.unsafeJson(order)
            : HttpServerResponse.unsafeJson({ _tag: "PurchaseOrderNotFound", id }, { status: 404 })
      ))
  )
)

const ServerLive = NodeHttpServer.layer(createServer, {
  port: Number(process.env.PORT ?? 3000),
  host: process.env.HOST ?? "127.0.0.1"
})

// The client is disconnected after the server has closed (SIGTERM interrupts the launch).
const PrismaLive = Layer.scopedDiscard(Effect.addFinalizer(() => Effect.promise(() => prisma.$disconnect())))

const App = HttpServer.serve(router).pipe(
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  Layer.provide(PrismaLive)
)

NodeRuntime.runMain(Layer.launch(App))

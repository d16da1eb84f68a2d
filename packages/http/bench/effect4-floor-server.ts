// The Effect 4 floor beside bench/effect-floor-server.ts (Effect 3):
// `GET /purchase-orders/:id` served by Effect 4's `HttpRouter` on
// `@effect/platform-node` 4's `NodeHttpServer`, with the query run as
// `Effect.promise(() => prisma.purchaseOrder.findUnique(…))` — the same
// PrismaClient, pool settings, `select` and JSON as the other floor servers.
// No HttpApi, schema, validation, retries, timeouts, metrics or health: the
// least an Effect 4 HTTP server pays for this request. It lives in
// packages/http so that `effect` resolves to the http package's Effect 4 (the
// repository's root keeps Effect 3).
//
//   DATABASE_URL=... PORT=0 HOST=127.0.0.1 node --import tsx packages/http/bench/effect4-floor-server.ts
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { makeClient, orderColumns as columns } from "../../../bench/server-env.js"

const prisma = makeClient()

const Route = HttpRouter.add(
  "GET",
  "/purchase-orders/:id",
  Effect.flatMap(HttpRouter.params, ({ id = "" }) =>
    Effect.map(
      Effect.promise(() => prisma.purchaseOrder.findUnique({ where: { id }, select: columns })),
      (order) =>
        order
          ? HttpServerResponse.jsonUnsafe(order)
          : HttpServerResponse.jsonUnsafe({ _tag: "PurchaseOrderNotFound", id }, { status: 404 })
    ))
)

const ServerLive = NodeHttpServer.layer(createServer, {
  port: Number(process.env.PORT ?? 3000),
  host: process.env.HOST ?? "127.0.0.1"
})

// The client is disconnected after the server has closed (SIGTERM interrupts the launch).
const PrismaLive = Layer.effectDiscard(Effect.addFinalizer(() => Effect.promise(() => prisma.$disconnect())))

// Like the Effect 3 floor, no per-request log line (Effect 4's router logs each request by default).
const App = HttpRouter.serve(Route, { disableLogger: true }).pipe(
  Layer.provide(ServerLive),
  Layer.provide(PrismaLive)
)

NodeRuntime.runMain(Layer.launch(App))

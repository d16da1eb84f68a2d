// An Effect 3 HTTP service on @prisma-resilience/core-effect3: the server
// starts listening only once the database layer has warmed up, /health is
// the layer's own health (it fails while queries would fail), and a unique
// violation answers 409 from the layer's typed error, not a retry.
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PrismaPg } from "@prisma/adapter-pg"
import { Database } from "@prisma-resilience/core-effect3"
import { Effect, Layer, Schema } from "effect"
import { createServer } from "node:http"
import { PrismaClient } from "./generated/prisma/client.js"

const AccountInput = Schema.Struct({ email: Schema.String, balanceCents: Schema.Int })

class Db extends Database.Tag("Db")<Db, PrismaClient>() {}

// DATABASE_URL and the DB_* settings come from the environment; `pool` is
// handed to PrismaPg whole so that failover can move the client.
const DbLive = Db.layerConfig({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })

const createAccount = Effect.gen(function*() {
  const body = yield* HttpServerRequest.schemaBodyJson(AccountInput)
  return yield* Db.query((c) => c.account.create({ data: body })).pipe(
    Effect.map((account) => json(account, 201)),
    // P2002 (the row exists) is a QueryError, never retried; `code` is Prisma's.
    Effect.catchIf((error) => error._tag === "QueryError" && error.code === "P2002", () =>
      Effect.succeed(json({ error: "email taken" }, 409)))
  )
})

const router = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/health",
    Db.health.pipe(
      Effect.map((health) => json(health)),
      Effect.catchAll((failure) => Effect.succeed(json({ status: "fail", error: failure._tag }, 503)))
    )
  ),
  HttpRouter.post("/accounts", createAccount),
  HttpRouter.get(
    "/accounts/:id",
    Effect.flatMap(HttpRouter.params, ({ id }) =>
      Db.query((c) => c.account.findUnique({ where: { id: Number(id) } })).pipe(
        Effect.map((account) => (account ? json(account) : json({ error: "not found" }, 404)))
      ))
  ),
  HttpRouter.catchAll((error) => Effect.succeed(json({ error: String((error as { _tag?: string })._tag ?? error) }, 500)))
)

const ServerLive = NodeHttpServer.layer(createServer, { port: Number(process.env.PORT ?? 3000), host: "127.0.0.1" })

const App = HttpServer.serve(router).pipe(
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  Layer.provide(DbLive)
)

NodeRuntime.runMain(Layer.launch(App))

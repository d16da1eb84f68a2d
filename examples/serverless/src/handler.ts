// A web-standard function handler (the shape Vercel and Netlify functions
// take) on createResilientPrisma. The client is made at module scope: a warm
// instance reuses it, and a cold start pays for it once. Imported from
// `@prisma-resilience/core/prisma`, the adapter alone, to load less.
import { PrismaPg } from "@prisma/adapter-pg"
import { createResilientPrisma, type HealthError } from "@prisma-resilience/core/prisma"
import { PrismaClient } from "./generated/prisma/client.js"

const db = createResilientPrisma({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })

export default async function handler(request: Request): Promise<Response> {
  const { pathname } = new URL(request.url)
  if (pathname === "/health") {
    // A cold instance is still warming up: health would say so (and fail) until
    // it is done, so wait for it first, as a query would.
    await db.$ready().catch(() => undefined)
    return db.$health().then(
      (report) => Response.json(report),
      (error: HealthError) => Response.json({ status: "fail", reason: error.reason }, { status: 503 })
    )
  }
  return Response.json({ users: await db.user.count() })
}

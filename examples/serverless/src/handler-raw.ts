// The same handler on a plain PrismaClient: what the cold-start benchmark
// compares the resilient one with.
import { PrismaPg } from "@prisma/adapter-pg"
import { PrismaClient } from "./generated/prisma/client.js"

const db = new PrismaClient({ adapter: new PrismaPg({ connectionString: process.env.DATABASE_URL }) })

export default async function handler(request: Request): Promise<Response> {
  const { pathname } = new URL(request.url)
  if (pathname === "/health") return Response.json({ status: "pass" })
  return Response.json({ users: await db.user.count() })
}

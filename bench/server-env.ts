// What every benchmark server of bench/http.ts shares, so that they differ
// only in their HTTP stack: the database from DATABASE_URL, the service's
// default pool settings, and the columns the service selects.
import { makePrismaClient } from "@prisma-resilience/http/db"

export const databaseUrl = (() => {
  const url = process.env.DATABASE_URL
  if (!url) throw new Error("DATABASE_URL is not set")
  return url
})()

export const pool = {
  max: Number(process.env.DB_POOL_MAX ?? 10),
  connectionTimeoutMillis: 2000,
  idleTimeoutMillis: 10_000
}

/** The service's own client factory with the service's default pool. */
export const makeClient = () => makePrismaClient(databaseUrl, pool)

export const orderColumns = { id: true, reference: true, totalCents: true, note: true, createdAt: true } as const

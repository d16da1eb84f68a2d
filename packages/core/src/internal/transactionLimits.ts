/**
 * Prisma's own limits for one interactive-transaction attempt of
 * `timeoutMs`: they end just inside it (by the server margin), so that Prisma
 * rolls the transaction back before the attempt's timer fires, and the
 * attempt never outlives its timeout (no backstop beyond it: the request
 * budget's arithmetic has no such term).
 */
import type { IsolationLevel, PoolSettings, ServerTimeoutConfig } from "../DatabaseService.js"

export const prismaLimits = (
  server: ServerTimeoutConfig,
  pool: PoolSettings,
  options: { readonly isolationLevel?: IsolationLevel | undefined; readonly maxWait?: number | undefined } | undefined,
  timeoutMs: number
) => {
  const inside = Math.max(1, timeoutMs - server.marginMs)
  return {
    isolationLevel: options?.isolationLevel,
    maxWait: Math.min(options?.maxWait ?? pool.connectionTimeoutMillis, inside),
    timeout: inside
  }
}

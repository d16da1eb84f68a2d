/**
 * The service's own data layer: the purchase-order schema's generated Prisma
 * client, the factory that builds it over a pg pool, and the migration runner
 * for `prisma/migrations`.
 */
export {
  makePrismaClient,
  type PoolCounts,
  type PoolOptions,
  poolStats,
  Prisma,
  PrismaClient,
  type PurchaseOrder
} from "./client.js"
export { applyMigrations, type MigrateOptions, type MigrateResult } from "./migrate.js"

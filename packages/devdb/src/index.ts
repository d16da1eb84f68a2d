export {
  createCluster,
  freePort,
  startCluster,
  type Cluster,
  type ClusterOptions,
  type ShutdownMode
} from "./EmbeddedPostgres.js"
export { applyMigrations, type MigrateOptions, type MigrateResult } from "./migrate.js"
export { startProxy, type TcpProxy } from "./TcpProxy.js"
export {
  makePrismaClient,
  type PoolCounts,
  type PoolOptions,
  poolStats,
  Prisma,
  PrismaClient,
  type PurchaseOrder
} from "./client.js"

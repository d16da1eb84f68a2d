/**
 * @prisma-resilience/http: the purchase-order service built on
 * @prisma-resilience/core. `npm start` runs `main.ts`.
 */
export * from "./Api.js"
export * as ApiLive from "./ApiLive.js"
export { main } from "./main.js"
export * as Prometheus from "./Prometheus.js"
export * as PurchaseOrders from "./PurchaseOrders.js"
export * as Readiness from "./Readiness.js"
export * as Server from "./Server.js"
export * as ServerConfig from "./ServerConfig.js"
export * as WebHandler from "./WebHandler.js"

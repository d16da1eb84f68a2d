/**
 * The Promise adapter on its own: `createResilientPrisma` and what a Promise
 * caller meets (the errors, `classificationOf`, `isRetryable`). The same names
 * as the main entry, without what only an Effect app reads (the `Config`s of
 * `RetryPolicy`, `CircuitBreaker`, `RetryBudget`, `Setting`, `databaseConfig`),
 * whose `effect/Config` loads Effect's Schema: for a serverless function,
 * where every cold start pays the import.
 *
 * @example
 * ```ts
 * import { createResilientPrisma } from "@prisma-resilience/core/prisma"
 * const db = createResilientPrisma({ client: (pool) => new PrismaClient({ adapter: new PrismaPg(pool) }) })
 * ```
 *
 * @since 1.0.0
 */
export { classify, type ClassifyContext } from "./Classify.js"
export * from "./Errors.js"
export { classificationOf, createResilientPrisma, type ResilientPrisma, type ResilientPrismaOptions } from "./ResilientPrisma.js"

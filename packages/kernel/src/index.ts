/**
 * @prisma-resilience/kernel: the parts of the resilience layer that need no
 * Effect — the error taxonomy and retry safety as data, the operation
 * recorder, the retry policy's arithmetic, the retry budget and circuit
 * breaker state machines, query-path health, topology decisions, the
 * settings with their defaults and validation, and credential redaction.
 * Every binding (the Effect 3 library, a later Effect 4 one, the Promise
 * adapter) is built on it; each module is also importable on its own
 * (`@prisma-resilience/kernel/classify`).
 *
 * @since 0.2.0
 */
export * as CircuitBreaker from "./circuitBreaker.js"
export * from "./classify.js"
export * from "./connectionString.js"
export * from "./describe.js"
export * as QueryHealth from "./queryHealth.js"
export * from "./recording.js"
export * from "./redact.js"
export * as RetryBudget from "./retryBudget.js"
export * as RetryPolicy from "./retryPolicy.js"
export * from "./safety.js"
export * from "./serverDeadline.js"
export * as Settings from "./settings.js"
export * as Topology from "./topology.js"
export * from "./timer.js"
export * as Variables from "./variables.js"

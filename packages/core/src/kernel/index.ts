/**
 * The parts of the resilience layer that do not depend on Effect: the error
 * taxonomy and retry safety as data, the circuit breaker and retry budget
 * state machines, the retry policy's arithmetic and credential redaction. A
 * binding to another Effect major (or to no Effect at all) reuses these.
 */
export * as CircuitBreaker from "./circuitBreaker.js"
export {
  ConnectionStringError,
  type HostPort,
  type MultiHost,
  parseMultiHost,
  type TargetSessionAttrs
} from "./connectionString.js"
export { diagnose, type Diagnosis, type ErrorTag, isBrokenSchema, isPoolWait, POOL_ACQUIRE_TIMEOUT, type Verdict } from "./classify.js"
export { redact, summarize } from "./redact.js"
export * as Topology from "./topology.js"
export * as QueryHealth from "./queryHealth.js"
export * as RetryBudget from "./retryBudget.js"
export * as RetryPolicy from "./retryPolicy.js"
export { isPlainRead, isSafeToRetry, kindOfCall, kindOfMethod, type OperationKind, type RetrySafety } from "./safety.js"

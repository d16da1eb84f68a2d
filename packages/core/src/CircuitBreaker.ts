/**
 * The circuit breaker's settings. One breaker guards the queries of one
 * `Database`: after `failureThreshold` consecutive failures of the retryable
 * kind it opens and queries fail at once with `CircuitOpenError`; after
 * `resetTimeoutMs` (jittered) it is half-open and lets exactly one probe
 * through — health's probe when health asks first — while every other caller
 * keeps failing fast; the probe's success closes it, its failure opens it
 * again. Its state is published as `db_circuit_state`. The state machine is
 * `@prisma-resilience/kernel/circuitBreaker`.
 *
 * @since 0.1.0
 */
import type { CircuitBreakerConfig } from "@prisma-resilience/kernel/circuitBreaker"
import type * as Config from "effect/Config"
import * as Setting from "./internal/settingConfig.js"

export {
  /**
   * The breaker's settings: `failureThreshold` (0 disables it),
   * `resetTimeoutMs`, `resetJitter`.
   *
   * @since 0.1.0
   */
  type CircuitBreakerConfig,
  /**
   * `failureThreshold` 5, `resetTimeoutMs` 2000, `resetJitter` 0.2.
   *
   * @since 0.1.0
   */
  defaults,
  /**
   * `closed`, `open` or `half-open`.
   *
   * @since 0.1.0
   */
  type State
} from "@prisma-resilience/kernel/circuitBreaker"

/**
 * DB_CIRCUIT_FAILURE_THRESHOLD (default 5; 0 disables the breaker),
 * DB_CIRCUIT_RESET_MS (default 2000), DB_CIRCUIT_RESET_JITTER (default 0.2:
 * each reset lasts up to 20 % longer, at random, so a fleet's breakers do not
 * probe in lockstep).
 *
 * @since 0.1.0
 */
export const config: Config.Config<CircuitBreakerConfig> = Setting.group("circuitBreaker")

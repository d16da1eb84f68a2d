/**
 * A circuit breaker around the database, shared by the queries of one
 * `Database`: after `failureThreshold` consecutive failures of the retryable
 * kind it opens and queries fail at once with `CircuitOpenError`; after
 * `resetTimeoutMs` it is half-open and lets exactly one probe through, while
 * every other caller keeps failing fast; the probe's success closes it, its
 * failure opens it again. The state machine is `kernel/circuitBreaker`; this
 * module reads its settings and publishes `db_circuit_state`.
 */
import { Config, type MetricLabel } from "effect"
import * as Kernel from "@prisma-resilience/kernel/circuitBreaker"
import * as Metrics from "./Metrics.js"
import * as Setting from "./Setting.js"

export {
  type CircuitBreaker,
  type CircuitBreakerConfig,
  defaults,
  type Permit,
  type State,
  stateValue,
  type Transition
} from "@prisma-resilience/kernel/circuitBreaker"

/**
 * DB_CIRCUIT_FAILURE_THRESHOLD (default 5; 0 disables the breaker),
 * DB_CIRCUIT_RESET_MS (default 2000), DB_CIRCUIT_RESET_JITTER (default 0.2:
 * each reset lasts up to 20 % longer, at random, so a fleet's breakers do not
 * probe in lockstep)
 */
export const config: Config.Config<Kernel.CircuitBreakerConfig> = Setting.group("circuitBreaker")

/** A breaker whose state is published to `db_circuit_state` under `labels`. */
export const make = (
  config: Kernel.CircuitBreakerConfig = Kernel.defaults,
  onTransition: (transition: Kernel.Transition) => void = () => {},
  labels: ReadonlyArray<MetricLabel.MetricLabel> = []
): Kernel.CircuitBreaker => {
  Metrics.circuitState.unsafeUpdate(Kernel.stateValue.closed, labels)
  return Kernel.make(config, (transition) => {
    Metrics.circuitState.unsafeUpdate(Kernel.stateValue[transition.to], labels)
    onTransition(transition)
  })
}

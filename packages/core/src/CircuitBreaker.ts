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
import * as Kernel from "./kernel/circuitBreaker.js"
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
} from "./kernel/circuitBreaker.js"

/**
 * DB_CIRCUIT_FAILURE_THRESHOLD (default 5; 0 disables the breaker),
 * DB_CIRCUIT_RESET_MS (default 2000), DB_CIRCUIT_RESET_JITTER (default 0.2:
 * each reset lasts up to 20 % longer, at random, so a fleet's breakers do not
 * probe in lockstep)
 */
export const config: Config.Config<Kernel.CircuitBreakerConfig> = Config.all({
  failureThreshold: Setting.integer("DB_CIRCUIT_FAILURE_THRESHOLD", Kernel.defaults.failureThreshold, {
    min: 0,
    range: "0 (disabled) or a positive integer"
  }),
  resetTimeoutMs: Setting.milliseconds("DB_CIRCUIT_RESET_MS", Kernel.defaults.resetTimeoutMs),
  resetJitter: Setting.number("DB_CIRCUIT_RESET_JITTER", Kernel.defaults.resetJitter ?? 0, {
    min: 0,
    max: 1,
    range: "a fraction from 0 (exact resets) to 1"
  })
})

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

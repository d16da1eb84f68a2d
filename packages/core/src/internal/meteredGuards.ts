/**
 * The kernel's circuit breaker and retry budget, publishing their state to
 * `db_circuit_state` and `db_retry_budget_tokens` under a database's (or a
 * node's) labels.
 */
import * as Breaker from "@prisma-resilience/kernel/circuitBreaker"
import * as Budget from "@prisma-resilience/kernel/retryBudget"
import * as Metrics from "./metrics.js"

/** A breaker whose state is published to `db_circuit_state` under `labels`. */
export const meteredBreaker = (
  config: Breaker.CircuitBreakerConfig = Breaker.defaults,
  onTransition: (transition: Breaker.Transition) => void = () => {},
  labels: Metrics.Labels = []
): Breaker.CircuitBreaker => {
  Metrics.record(Metrics.circuitState, Breaker.stateValue.closed, labels)
  return Breaker.make(config, (transition) => {
    Metrics.record(Metrics.circuitState, Breaker.stateValue[transition.to], labels)
    onTransition(transition)
  })
}

/** A budget whose tokens are published to `db_retry_budget_tokens` under `labels`. */
export const meteredBudget = (
  config: Budget.RetryBudgetConfig = Budget.defaults,
  labels: Metrics.Labels = []
): Budget.RetryBudget => Budget.make(config, (tokens) => Metrics.record(Metrics.retryBudgetTokens, tokens, labels))

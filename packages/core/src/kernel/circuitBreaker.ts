/**
 * The circuit breaker's state machine: after `failureThreshold` consecutive
 * failures of the retryable kind it opens and attempts are refused; after
 * `resetTimeoutMs` it is half-open and lets exactly one probe through, while
 * every other caller keeps failing fast (waiting would spend their request
 * budget on a database that is probably still down); the probe's success
 * closes it, its failure opens it again.
 *
 * Synchronous, taking the time as an argument, and free of any Effect import:
 * tested as data, shared by every binding.
 */

export type State = "closed" | "open" | "half-open"

/** `db_circuit_state` values */
export const stateValue: Readonly<Record<State, number>> = { closed: 0, open: 1, "half-open": 2 }

export interface CircuitBreakerConfig {
  /** consecutive failures that open the circuit; 0 disables the breaker */
  readonly failureThreshold: number
  /** ms from open to half-open */
  readonly resetTimeoutMs: number
}

export const defaults: CircuitBreakerConfig = { failureThreshold: 5, resetTimeoutMs: 2000 }

/** What `acquire` decided: run the attempt (`probe` when it is the half-open probe), or fail fast. */
export type Permit =
  | { readonly _tag: "Allowed"; readonly probe: boolean }
  | { readonly _tag: "Rejected"; readonly retryAfterMs: number; readonly state: "open" | "half-open" }

export interface Transition {
  readonly from: State
  readonly to: State
  readonly reason: string
}

export interface CircuitBreaker {
  readonly config: CircuitBreakerConfig
  readonly state: (now: number) => State
  /** ms until a probe may be let through; 0 when closed */
  readonly retryAfterMs: (now: number) => number
  /** asks to run an attempt at `now` */
  readonly acquire: (now: number) => Permit
  /** the attempt reached the database and it answered (errors such as P2002 included) */
  readonly onSuccess: (now: number, permit: Permit) => void
  /** the attempt failed with an error of the retryable kind */
  readonly onFailure: (now: number, permit: Permit, error: string) => void
  /**
   * The attempt ended without saying anything about the database (it never
   * got a connection from a full pool): the count stays as it was, and a
   * half-open probe's slot is freed for the next caller.
   */
  readonly onNeutral: (permit: Permit) => void
  /**
   * Forgets the failures: the database behind the breaker is another one now
   * (a new writer after a failover), and what the old one did says nothing
   * about it.
   */
  readonly reset: (reason: string) => void
}

const ALLOWED: Permit = { _tag: "Allowed", probe: false }
const PROBE: Permit = { _tag: "Allowed", probe: true }

export const make = (
  config: CircuitBreakerConfig = defaults,
  onTransition: (transition: Transition) => void = () => {}
): CircuitBreaker => {
  const enabled = config.failureThreshold > 0
  let current: State = "closed"
  let consecutiveFailures = 0
  let openedAt = 0
  let probeInFlight = false

  const move = (to: State, reason: string) => {
    const from = current
    current = to
    onTransition({ from, to, reason })
  }
  const effective = (now: number): State =>
    current === "open" && now - openedAt >= config.resetTimeoutMs ? "half-open" : current

  return {
    config,
    state: effective,
    retryAfterMs: (now) => {
      const state = effective(now)
      if (state === "closed") return 0
      if (state === "open") return config.resetTimeoutMs - (now - openedAt)
      // Half-open with a probe in flight: the probe decides within one attempt.
      return probeInFlight ? config.resetTimeoutMs : 0
    },
    acquire: (now) => {
      if (!enabled || current === "closed") return ALLOWED
      const state = effective(now)
      if (state === "open") {
        return { _tag: "Rejected", retryAfterMs: config.resetTimeoutMs - (now - openedAt), state: "open" }
      }
      if (probeInFlight) return { _tag: "Rejected", retryAfterMs: config.resetTimeoutMs, state: "half-open" }
      if (current === "open") move("half-open", `${config.resetTimeoutMs} ms after opening; letting one probe through`)
      probeInFlight = true
      return PROBE
    },
    onSuccess: (_, permit) => {
      consecutiveFailures = 0
      if (permit._tag === "Allowed" && permit.probe) {
        probeInFlight = false
        move("closed", "the probe succeeded")
      }
    },
    onNeutral: (permit) => {
      if (permit._tag === "Allowed" && permit.probe) probeInFlight = false
    },
    reset: (reason) => {
      consecutiveFailures = 0
      probeInFlight = false
      if (current !== "closed") move("closed", reason)
    },
    onFailure: (now, permit, error) => {
      if (!enabled) return
      if (permit._tag === "Allowed" && permit.probe) {
        probeInFlight = false
        openedAt = now
        move("open", `the probe failed (${error}); next probe in ${config.resetTimeoutMs} ms`)
        return
      }
      consecutiveFailures++
      if (current === "closed" && consecutiveFailures >= config.failureThreshold) {
        openedAt = now
        move(
          "open",
          `${consecutiveFailures} consecutive failures (last: ${error}); next probe in ${config.resetTimeoutMs} ms`
        )
      }
    }
  }
}

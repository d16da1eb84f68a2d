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
 *
 * @since 0.1.0
 */

/**
 * Where the breaker stands: `closed` lets every attempt through, `open`
 * refuses them all, `half-open` lets one probe through.
 *
 * @since 0.1.0
 */
export type State = "closed" | "open" | "half-open"

/**
 * The number each state is reported as in the `db_circuit_state` gauge.
 *
 * @since 0.1.0
 */
export const stateValue: Readonly<Record<State, number>> = { closed: 0, open: 1, "half-open": 2 }

/**
 * The breaker's settings (`DB_CIRCUIT_*`).
 *
 * @since 0.1.0
 */
export interface CircuitBreakerConfig {
  /** consecutive failures that open the circuit; 0 disables the breaker */
  readonly failureThreshold: number
  /** ms from open to half-open */
  readonly resetTimeoutMs: number
  /**
   * Stretches each reset by a random share of up to this fraction (0.2: up to
   * +20 %), so that the breakers of a fleet that opened together on one
   * outage do not all probe in the same instant; 0 makes resets exact.
   */
  readonly resetJitter?: number
}

/**
 * The defaults: open after 5 failures in a row, probe 2 s later (up to +20 % jitter).
 *
 * @since 0.1.0
 */
export const defaults: CircuitBreakerConfig = { failureThreshold: 5, resetTimeoutMs: 2000, resetJitter: 0.2 }

/**
 * What `acquire` decided: run the attempt (`probe` when it is the half-open
 * probe), or fail fast and say how long until a probe may go. Hand it back
 * to `onSuccess`, `onFailure` or `onNeutral` when the attempt ends.
 *
 * @since 0.1.0
 */
export type Permit =
  | { readonly _tag: "Allowed"; readonly probe: boolean }
  | { readonly _tag: "Rejected"; readonly retryAfterMs: number; readonly state: "open" | "half-open" }

/**
 * A change of state, as `make`'s `onTransition` hears it (for logs and metrics).
 *
 * @since 0.1.0
 */
export interface Transition {
  readonly from: State
  readonly to: State
  /** why, in words for a log line (`5 consecutive failures (last: …); next probe in 2000 ms`) */
  readonly reason: string
}

/**
 * One breaker's state and its operations. Every method takes the time (`now`,
 * in ms, from the caller's clock) rather than reading a clock itself.
 *
 * @since 0.1.0
 */
export interface CircuitBreaker {
  readonly config: CircuitBreakerConfig
  /** the state at `now`: an open breaker whose reset time has passed reads as half-open */
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

/**
 * A closed breaker. `onTransition` hears every change of state; `random`
 * (for the reset jitter) can be fixed in tests. A `failureThreshold` of 0
 * makes a breaker that lets everything through.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@prisma-resilience/kernel"
 *
 * const breaker = CircuitBreaker.make({ failureThreshold: 2, resetTimeoutMs: 1000, resetJitter: 0 })
 * breaker.onFailure(0, breaker.acquire(0), "ECONNREFUSED")
 * breaker.onFailure(10, breaker.acquire(10), "ECONNREFUSED")
 * breaker.state(10)      // "open"
 * breaker.acquire(500)   // { _tag: "Rejected", retryAfterMs: 510, state: "open" }
 * const probe = breaker.acquire(1010) // { _tag: "Allowed", probe: true }
 * breaker.acquire(1020)  // { _tag: "Rejected", retryAfterMs: 1000, state: "half-open" }
 * breaker.onSuccess(1030, probe)
 * breaker.state(1030)    // "closed"
 * ```
 *
 * @since 0.1.0
 */
export const make = (
  config: CircuitBreakerConfig = defaults,
  onTransition: (transition: Transition) => void = () => {},
  random: () => number = Math.random
): CircuitBreaker => {
  const enabled = config.failureThreshold > 0
  let current: State = "closed"
  let consecutiveFailures = 0
  let openedAt = 0
  // this opening's reset interval, jittered
  let resetMs = config.resetTimeoutMs
  let probeInFlight = false

  const move = (to: State, reason: string) => {
    const from = current
    current = to
    onTransition({ from, to, reason })
  }
  const open = (now: number, reason: (resetMs: number) => string) => {
    openedAt = now
    resetMs = Math.round(config.resetTimeoutMs * (1 + (config.resetJitter ?? 0) * random()))
    move("open", reason(resetMs))
  }
  const effective = (now: number): State =>
    current === "open" && now - openedAt >= resetMs ? "half-open" : current

  return {
    config,
    state: effective,
    retryAfterMs: (now) => {
      const state = effective(now)
      if (state === "closed") return 0
      if (state === "open") return resetMs - (now - openedAt)
      // Half-open with a probe in flight: the probe decides within one attempt.
      return probeInFlight ? resetMs : 0
    },
    acquire: (now) => {
      if (!enabled || current === "closed") return ALLOWED
      const state = effective(now)
      if (state === "open") {
        return { _tag: "Rejected", retryAfterMs: resetMs - (now - openedAt), state: "open" }
      }
      if (probeInFlight) return { _tag: "Rejected", retryAfterMs: resetMs, state: "half-open" }
      if (current === "open") move("half-open", `${resetMs} ms after opening; letting one probe through`)
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
        open(now, (ms) => `the probe failed (${error}); next probe in ${ms} ms`)
        return
      }
      consecutiveFailures++
      if (current === "closed" && consecutiveFailures >= config.failureThreshold) {
        open(now, (ms) => `${consecutiveFailures} consecutive failures (last: ${error}); next probe in ${ms} ms`)
      }
    }
  }
}

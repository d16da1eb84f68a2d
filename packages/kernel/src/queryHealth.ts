/**
 * What the queries themselves say about the database, for health: `SELECT 1`
 * passes while real queries wait on a lock, hit a broken table, or time out.
 * Health fails `degraded` when the last `failedQueries` attempts all failed,
 * or when attempts are in flight and none has settled for `stallMs` (a lock,
 * a frozen server: nothing fails yet, nothing finishes either).
 *
 * Health's own probe must be able to end a failing spell, or an instance
 * behind a readiness gate (which sends it no traffic while health fails)
 * would stay failed for good after the database came back. What a passing
 * `SELECT 1` proves depends on what the failures were (`FailureClass`): it
 * ends a spell of connection failures at once; a spell it cannot see (a
 * lock, a statement timeout, a broken table) needs a query of its own that
 * succeeds (the layer re-runs the last failed read), and only a spell of
 * transient failures with no read to re-run ends after `quietMs` without
 * another failure.
 *
 * Synchronous, taking the time as an argument, free of any Effect import; the
 * query path pays a few field updates per attempt.
 *
 * @since 0.1.0
 */
import { isBrokenSchema, isPoolWait } from "./classify.js"

/**
 * The query-path check's settings (`DB_HEALTH_FAILED_QUERIES`, `DB_HEALTH_STALL_MS`).
 *
 * @since 0.1.0
 */
export interface QueryHealthConfig {
  /** consecutive failed attempts that fail health; 0 disables the check */
  readonly failedQueries: number
  /** ms without any attempt settling, while some are in flight, that fail health; 0 disables the check */
  readonly stallMs: number
}

/**
 * The defaults: 3 failed attempts in a row, or 1 s without any attempt settling.
 *
 * @since 0.1.0
 */
export const defaults: QueryHealthConfig = { failedQueries: 3, stallMs: 1000 }

/**
 * What a failed attempt says about the query path, for health:
 * - `probe`: a failure `SELECT 1` on the same client meets too (the server
 *   unreachable, the connection refused or closed, an empty response);
 * - `transient`: one `SELECT 1` cannot see and that passes by itself (a lock
 *   or statement timeout, an attempt timeout, a resource limit);
 * - `permanent`: one `SELECT 1` cannot see and that lasts until the schema
 *   changes (a missing table or column).
 *
 * @since 0.1.0
 */
export type FailureClass = "probe" | "transient" | "permanent"

/**
 * The class of an error by its tag and code (see `FailureClass`).
 *
 * @since 0.1.0
 */
export const failureClass = (tag: string, code: string | undefined): FailureClass => {
  if (isBrokenSchema(code)) return "permanent"
  // A pool wait is this process's own queue, not the server: SELECT 1 waits in it too, but proves nothing by passing.
  if ((tag === "ConnectionError" && !isPoolWait(code)) || tag === "EmptyResponseError") return "probe"
  return "transient"
}

const severity: Readonly<Record<FailureClass, number>> = { probe: 0, transient: 1, permanent: 2 }

/**
 * Why health fails on the query path: the attempts keep failing, or none
 * finishes.
 *
 * @since 0.1.0
 */
export interface Degraded {
  /** `failing`: the last `failedQueries` attempts failed; `stalled`: none settled for `stallMs` */
  readonly reason: "failing" | "stalled"
  /** the same in words, credential-free, for the health report */
  readonly message: string
}

/**
 * The query path's health state: the query path reports each attempt
 * (`started`, `settled`), health asks `degraded`. Every method takes the time
 * (`now`, in ms) rather than reading a clock.
 *
 * @since 0.1.0
 */
export interface QueryHealth {
  readonly config: QueryHealthConfig
  /** an attempt was sent at `now` */
  readonly started: (now: number) => void
  /** an attempt settled at `now`; `failed` when it says the query path does not work */
  readonly settled: (now: number, failed: boolean, error?: string, failure?: FailureClass) => void
  /**
   * Health's probe passed at `now`: ends a spell of `probe` failures
   * (`cleared`); any other spell is `hidden` from it. `none`: no spell.
   */
  readonly probePassed: (now: number) => "none" | "cleared" | "hidden"
  /**
   * Ends a spell of `transient` failures none of which came in the last
   * `quietMs`, for when no query is at hand to prove the path works: like a
   * breaker's half-open state, it lets traffic try again, and a failing path
   * fails health again after `failedQueries` attempts. True when it ended one.
   */
  readonly expire: (now: number, quietMs: number) => boolean
  /** why queries are not working now, or undefined */
  readonly degraded: (now: number) => Degraded | undefined
  /** forgets the failures: the queries go to another node now */
  readonly reset: (now: number) => void
}

/**
 * A fresh state: no attempt in flight, no failure.
 *
 * @since 0.1.0
 */
export const make = (config: QueryHealthConfig = defaults): QueryHealth => {
  let inFlight = 0
  // When the query path last made progress: an attempt settled, or work
  // began after an idle spell (an idle pool is not a stalled one).
  let progressAt = 0
  let consecutiveFailures = 0
  let lastError = ""
  let lastFailureAt = 0
  // the most severe class of the current spell of failures
  let spell: FailureClass = "probe"
  const clear = (now: number) => {
    consecutiveFailures = 0
    spell = "probe"
    progressAt = now
  }
  return {
    config,
    started: (now) => {
      if (inFlight++ === 0) progressAt = now
    },
    settled: (now, failed, error, failure = "transient") => {
      inFlight = Math.max(0, inFlight - 1)
      progressAt = now
      if (failed) {
        if (consecutiveFailures++ === 0 || severity[failure] > severity[spell]) spell = failure
        lastError = error ?? lastError
        lastFailureAt = now
      } else {
        consecutiveFailures = 0
        spell = "probe"
      }
    },
    probePassed: (now) => {
      if (consecutiveFailures === 0) return "none"
      if (spell !== "probe") return "hidden"
      clear(now)
      return "cleared"
    },
    expire: (now, quietMs) => {
      if (consecutiveFailures === 0 || spell !== "transient" || now - lastFailureAt < quietMs) return false
      clear(now)
      return true
    },
    reset: clear,
    degraded: (now) => {
      if (config.failedQueries > 0 && consecutiveFailures >= config.failedQueries) {
        return {
          reason: "failing",
          message: `the last ${consecutiveFailures} query attempts failed${lastError ? ` (last: ${lastError})` : ""}`
        }
      }
      if (config.stallMs > 0 && inFlight > 0 && now - progressAt >= config.stallMs) {
        return {
          reason: "stalled",
          message: `${inFlight} query attempt(s) in flight and none finished for ${now - progressAt} ms`
        }
      }
      return undefined
    }
  }
}

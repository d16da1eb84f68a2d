/**
 * What the queries themselves say about the database, for health: `SELECT 1`
 * passes while real queries wait on a lock, hit a broken table, or time out.
 * Health fails `degraded` when the last `failedQueries` attempts all failed,
 * or when attempts are in flight and none has settled for `stallMs` (a lock,
 * a frozen server: nothing fails yet, nothing finishes either).
 *
 * Synchronous, taking the time as an argument, free of any Effect import; the
 * query path pays a few field updates per attempt.
 */

export interface QueryHealthConfig {
  /** consecutive failed attempts that fail health; 0 disables the check */
  readonly failedQueries: number
  /** ms without any attempt settling, while some are in flight, that fail health; 0 disables the check */
  readonly stallMs: number
}

export const defaults: QueryHealthConfig = { failedQueries: 3, stallMs: 1000 }

export interface Degraded {
  readonly reason: "failing" | "stalled"
  readonly message: string
}

export interface QueryHealth {
  readonly config: QueryHealthConfig
  /** an attempt was sent at `now` */
  readonly started: (now: number) => void
  /** an attempt settled at `now`; `failed` when it says the query path does not work */
  readonly settled: (now: number, failed: boolean, error?: string) => void
  /** why queries are not working now, or undefined */
  readonly degraded: (now: number) => Degraded | undefined
  /** forgets the failures: the queries go to another node now */
  readonly reset: (now: number) => void
}

export const make = (config: QueryHealthConfig = defaults): QueryHealth => {
  let inFlight = 0
  // When the query path last made progress: an attempt settled, or work
  // began after an idle spell (an idle pool is not a stalled one).
  let progressAt = 0
  let consecutiveFailures = 0
  let lastError = ""
  return {
    config,
    started: (now) => {
      if (inFlight++ === 0) progressAt = now
    },
    settled: (now, failed, error) => {
      inFlight = Math.max(0, inFlight - 1)
      progressAt = now
      if (failed) {
        consecutiveFailures++
        lastError = error ?? lastError
      } else {
        consecutiveFailures = 0
      }
    },
    reset: (now) => {
      consecutiveFailures = 0
      progressAt = now
    },
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

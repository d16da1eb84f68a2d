/**
 * Attempt timeouts without a timer per attempt, on an injected clock.
 *
 * Creating and clearing a Node timer costs about as much as the rest of a
 * query's success path, so one sweeper per timer checks every pending
 * attempt instead. The clock is a parameter so that each binding reads time
 * one way: the Effect library passes its `Clock` (a `TestClock` then drives
 * the timeouts), the Promise adapter can pass `performance.now`.
 *
 * @since 0.2.0
 */

/**
 * One pending attempt: when it expires, on the timer's clock, and what to
 * call then.
 *
 * @since 0.2.0
 */
export interface Entry {
  readonly deadline: number
  readonly expire: () => void
}

/**
 * A set of pending attempts swept every `sweepMs` of real time.
 *
 * @since 0.2.0
 */
export interface Timer {
  /** Calls `expire` once `timeoutMs` have passed on the clock, unless `untrack`ed first. */
  readonly track: (timeoutMs: number, expire: () => void) => Entry
  /** Forgets `entry`: its attempt settled. */
  readonly untrack: (entry: Entry) => void
  /** The clock the deadlines are on (milliseconds). */
  readonly now: () => number
  /** Expires the entries that are due now; the sweeper calls it, and so may a test. */
  readonly sweep: () => void
  /** How many attempts are pending. */
  readonly size: () => number
}

/**
 * A sweeper that found nothing to do this many times in a row stops, so an
 * idle process has no interval; the next `track` starts it again.
 *
 * @since 0.2.0
 */
export const IDLE_SWEEPS_BEFORE_STOP = 40

/**
 * A timer on `now` (milliseconds, any origin). Timeouts fire up to `sweepMs`
 * of real time late (the sweeper runs on a real interval even when `now` is
 * a test clock: a test advances `now`, then waits one sweep), which is
 * noise next to attempt timeouts of seconds.
 *
 * @since 0.2.0
 */
export const makeTimer = (now: () => number, sweepMs = 25): Timer => {
  const pending = new Set<Entry>()
  let sweeper: ReturnType<typeof setInterval> | undefined
  let idleSweeps = 0
  const sweep = () => {
    if (pending.size === 0) {
      if (++idleSweeps >= IDLE_SWEEPS_BEFORE_STOP && sweeper !== undefined) {
        clearInterval(sweeper)
        sweeper = undefined
      }
      return
    }
    idleSweeps = 0
    const at = now()
    for (const entry of pending) {
      if (entry.deadline <= at) {
        pending.delete(entry)
        entry.expire()
      }
    }
  }
  const track = (timeoutMs: number, expire: () => void): Entry => {
    const entry: Entry = { deadline: now() + timeoutMs, expire }
    pending.add(entry)
    if (sweeper === undefined) {
      idleSweeps = 0
      sweeper = setInterval(sweep, sweepMs)
      // Pending sockets keep the process alive; the sweeper alone must not.
      sweeper.unref?.()
    }
    return entry
  }
  return { track, untrack: (entry) => void pending.delete(entry), now, sweep, size: () => pending.size }
}

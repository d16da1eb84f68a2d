/**
 * Reading a `Database`'s time: every read goes through the Effect `Clock`
 * captured when its layer was built, so that a layer built under `TestClock`
 * follows test time (attempt timeouts, the breaker, health, durations,
 * topology timing).
 */
import { type Clock, Effect } from "effect"
import { makeTimer, type Timer } from "@prisma-resilience/kernel/timer"

// The clock of Effect's default services: one instance, shared by every
// runtime that does not provide its own.
const liveClock: Clock.Clock = Effect.runSync(Effect.clock)

/**
 * Milliseconds on `clock`, fractional when `clock` is the live clock.
 *
 * The live clock's `unsafeCurrentTimeMillis` is `Date.now()`: whole
 * milliseconds, too coarse for `db_query_duration_seconds`, whose first
 * bucket is 1 ms, and its `unsafeCurrentTimeNanos` allocates a bigint per
 * read. For the live clock `performance.now()` is the same real time (another
 * origin, so only differences of two `millis` reads are meaningful); any
 * other clock (`TestClock`) is read as it is.
 */
export const millisOf = (clock: Clock.Clock): () => number =>
  clock === liveClock ? () => performance.now() : () => clock.unsafeCurrentTimeMillis()

/** The attempt timer of one `Database`, on its clock. */
export const timerOf = (clock: Clock.Clock): Timer => makeTimer(millisOf(clock))

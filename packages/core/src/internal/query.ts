/**
 * `Database.query`: one attempt on the success path, set up synchronously
 * (no schedule, no fiber of its own, a span only when a tracer is installed);
 * the retry schedule is entered from the failed attempt's callback. What a
 * retry may do is decided by the calls the query function made (its most
 * dangerous one), and an attempt that failed is fenced so that it sends
 * nothing more. Every Effect operation saved here shows up between real
 * round trips (bench/layer-breakdown.ts).
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Tracer from "effect/Tracer"
import type { PrismaClientLike, QueryOptions } from "../DatabaseService.js"
import type { DatabaseError } from "../Errors.js"
import * as RetryPolicy from "../RetryPolicy.js"
import { continueAfter } from "./retryLoop.js"
import { newRecording, oneCallKind, type Recording, recordAttempt } from "@prisma-resilience/kernel/recording"
import { guardedAttempt, type Recover, recordDuration, startGuardedAttempt } from "./attempt.js"
import { afterDiscovery, type Engine, isLazy, markWrote, merge, nowIn } from "./engine.js"
import { routed } from "./replicaRouting.js"

// The default tracer is Effect's own; while it is in place nobody collects
// spans, and the query path skips creating them.
const defaultTracer = Effect.runSync(Effect.tracer)

/** One query's first attempt, set up, and what continues after it fails. */
interface Prepared<A> {
  /** the first attempt's promise: `f` is called at most once, and not before the breaker let the attempt through */
  readonly first: () => PromiseLike<A>
  /** that promise, once `f` has been called */
  readonly sent: () => PromiseLike<A> | undefined
  readonly name: string
  readonly kind: "read" | "write" | "idempotent-write"
  readonly started: number
  readonly firstTimeoutMs: number
  readonly attempt: (n: number, promise: () => PromiseLike<A>, timeoutMs: number, recover?: Recover<A>) => Effect.Effect<A, DatabaseError>
  readonly afterFirstFailure: Recover<A>
}

/** Runs `f` once on the current client: on a recording view unless its one call is declared. */
const sendFirst = <C extends PrismaClientLike, A>(e: Engine<C>, run: (client: C) => PromiseLike<A>, recording: Recording | undefined) => {
  try {
    return recording === undefined ? run(e.primary.client) : recordAttempt(e.primary.client, run, recording)
  } catch (error) {
    // A query function that throws before returning its promise is a failed attempt, not a defect.
    return Promise.reject(error)
  }
}

const prepare = <C extends PrismaClientLike, C2, A>(
  e: Engine<C>,
  f: (client: C2) => PromiseLike<A>,
  options: QueryOptions | undefined,
  now: number,
  deadline: number | undefined,
  tracing: boolean
): Prepared<A> => {
  const started = e.guard.timer.now()
  const run = f as unknown as (client: C) => PromiseLike<A>
  // One known call needs no recording view (the adapter's model calls: the
  // hot path); any other query function runs on one per attempt.
  const known = oneCallKind(options)
  const recording = known === undefined ? newRecording() : undefined
  // Calling `f` is what names the operation and tells its kind, but an async
  // query function starts sending when called: while the breaker is not
  // closed, `f` waits for its permit (and the operation is named only by
  // `options.operation`), so a refused attempt sends nothing.
  let sent = e.guard.breaker.state(now) === "closed" ? sendFirst(e, run, recording) : undefined
  const first = () => (sent ??= sendFirst(e, run, recording))
  // The Prisma calls actually made decide what a retry may do; a name
  // given in `operation` is only a name.
  const name = options?.operation ?? recording?.operation ?? "query"
  const config = options?.retry === undefined ? e.retryConfig : merge(e.retryConfig, options.retry)
  const deadlineMs = RetryPolicy.deadlineOf(deadline, config, now)
  const attempt = (n: number, promise: () => PromiseLike<A>, timeoutMs: number, recover?: Recover<A>) => {
    const effect = guardedAttempt(e.guard, e.limited(promise, timeoutMs), timeoutMs, name, n, started, recover)
    return tracing
      ? Effect.withSpan(effect, "Database.attempt", { attributes: { "db.operation": name, attempt: n }, kind: "client" })
      : effect
  }
  const prepared: Prepared<A> = {
    first,
    sent: () => sent,
    name,
    kind: options?.kind ?? known ?? recording?.kind ?? "write",
    started,
    firstTimeoutMs: RetryPolicy.attemptTimeout(config, deadlineMs, now),
    attempt,
    afterFirstFailure: (error) =>
      retryAfter(e, { f, options, run, known, recording, prepared, config, deadlineMs }, error)
  }
  return prepared
}

interface Failed<C extends PrismaClientLike, C2, A> {
  readonly f: (client: C2) => PromiseLike<A>
  readonly options: QueryOptions | undefined
  readonly run: (client: C) => PromiseLike<A>
  readonly known: "read" | "write" | undefined
  recording: Recording | undefined
  readonly prepared: Prepared<A>
  readonly config: RetryPolicy.RetryConfig
  readonly deadlineMs: number
}

/** Fences the failed attempt's view and keeps the kind of its most dangerous call; notes a canary for health. */
const fence = <C extends PrismaClientLike, C2, A>(e: Engine<C>, q: Failed<C, C2, A>, worst: { kind: "read" | "write" | undefined }, error: DatabaseError) => {
  const recording = q.recording
  if (recording !== undefined) {
    recording.fenced = true
    if (recording.kind === "write" || worst.kind === undefined) worst.kind = recording.kind ?? worst.kind
  }
  // One lazy read is safe to send again: health's canary when SELECT 1 cannot tell.
  const oneRead = q.known === "read" || (recording?.calls === 1 && recording.kind === "read")
  const sent = q.prepared.sent()
  if (oneRead && error._tag !== "CircuitOpenError" && sent !== undefined && isLazy(sent)) {
    e.guard.canary = () => q.f(e.primary.client as unknown as C2)
  }
}

/** Everything after attempt 1 failed: the retry schedule, each attempt on the current client and a view of its own. */
const retryAfter = <C extends PrismaClientLike, C2, A>(e: Engine<C>, q: Failed<C, C2, A>, error: DatabaseError): Effect.Effect<A, DatabaseError> => {
  const { config, deadlineMs, prepared } = q
  // The most dangerous call of every attempt so far: an async query
  // function may write only after an await.
  const worst = { kind: q.known ?? q.recording?.kind }
  const send = q.known !== undefined
    ? () => q.run(e.primary.client)
    : () => recordAttempt(e.primary.client, q.run, (q.recording = newRecording()))
  const again = (n: number, timeoutMs: number) =>
    prepared.attempt(n, send, timeoutMs).pipe(Effect.tapError((error) => Effect.sync(() => fence(e, q, worst, error))))
  fence(e, q, worst, error)
  // An eager promise (an async query function) that will never be awaited
  // must still be observed; a Prisma promise is lazy, and observing it would
  // send the query the breaker just refused.
  const sent = prepared.sent()
  if (error._tag === "CircuitOpenError" && sent !== undefined && !isLazy(sent)) sent.then(undefined, () => {})
  const now = () => e.guard.clock.currentTimeMillisUnsafe()
  return continueAfter(
    error,
    ({ attempt: n, timeoutMs }) =>
      e.topology.discovering()
        ? Effect.andThen(
          e.topology.awaitWriter(deadlineMs, now(), prepared.name, n),
          Effect.suspend(() => again(n, RetryPolicy.attemptTimeout(config, deadlineMs, now())))
        )
        : again(n, timeoutMs),
    {
      config,
      operation: prepared.name,
      get kind() {
        return q.options?.kind ?? worst.kind ?? "write"
      },
      deadlineMs,
      budget: e.guard.budget,
      overloaded: e.guard.overloaded
    }
  ).pipe(Effect.tapError(() => Effect.sync(() => recordDuration(e.guard.timer, prepared.name, prepared.started))))
}

/** `Database.query` in `fiber`: replica routing and the wait for a new writer first, then the first attempt. */
export const queryIn = <C extends PrismaClientLike, C2, A>(
  e: Engine<C>,
  fiber: Fiber.Fiber<unknown, unknown>,
  f: (client: C2) => PromiseLike<A>,
  options: QueryOptions | undefined
): Effect.Effect<A, DatabaseError> => {
  if (e.topology.active) {
    if (options?.replica === true && e.replicas.size > 0) return routed(e, fiber, f, options)
    // A failover is being handled: wait for the new writer instead of
    // sending this query to the old one.
    if (e.topology.discovering()) return afterDiscovery(e, fiber, options?.operation ?? "query", e.ops.query(f, options))
  }
  const tracing = fiber.getRef(Tracer.Tracer) !== defaultTracer
  // The per-call budget, if any, applies when the request set no deadline.
  const q = prepare(e, f, options, nowIn(fiber), fiber.getRef(RetryPolicy.currentDeadline), tracing)
  const firstAttempt = q.attempt(1, q.first, q.firstTimeoutMs, q.afterFirstFailure)
  const traced = tracing
    ? Effect.withSpan(firstAttempt, "Database.query", { attributes: { "db.operation": q.name }, kind: "client" })
    : firstAttempt
  return q.kind !== "read" && e.replicas.size > 0 ? Effect.andThen(markWrote, traced) : traced
}

/** Runs a query's first attempt without a fiber: see `QueryNow` in Database. */
export const queryNow = <C extends PrismaClientLike, C2, A>(
  e: Engine<C>,
  f: (client: C2) => PromiseLike<A>,
  options: QueryOptions | undefined,
  deadline: number | undefined,
  onSuccess: (value: A) => void,
  onFailure: (rest: Effect.Effect<A, DatabaseError>) => void
): void => {
  const q = prepare(e, f, options, e.guard.clock.currentTimeMillisUnsafe(), deadline, false)
  startGuardedAttempt(
    e.guard,
    e.limited(q.first, q.firstTimeoutMs),
    q.firstTimeoutMs,
    q.name,
    1,
    q.started,
    onSuccess,
    (error) => onFailure(q.afterFirstFailure(error))
  )
}

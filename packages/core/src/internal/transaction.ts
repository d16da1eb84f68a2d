/**
 * `Database.transaction`: an interactive transaction run again whole on
 * conflicts, with a transaction-local limit from what is left of its attempt,
 * and its transaction id recorded before COMMIT. When the connection fails
 * during COMMIT, `txid_status` decides: committed, it succeeds with the value
 * the function returned (nothing runs again); rolled back, it runs again like
 * a conflict; unknown, the ambiguous error.
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { PrismaClientLike, TransactionClient, TransactionOptions } from "../DatabaseService.js"
import {
  ConnectionError,
  type DatabaseError,
  EmptyResponseError,
  QueryError,
  type RetrySafety,
  TimeoutError,
  TransactionError
} from "../Errors.js"
import * as Metrics from "./metrics.js"
import * as RetryPolicy from "../RetryPolicy.js"
import type { Timer } from "@prisma-resilience/kernel/timer"
import { ATTEMPT_TIMEOUT, guardedAttempt, recordDuration } from "./attempt.js"
import { describe } from "@prisma-resilience/kernel/describe"
import { afterDiscovery, deadlineIn, type Engine, markWrote, merge, nowIn } from "./engine.js"
import { routedTransaction } from "./replicaRouting.js"
import { type BeforeCommit, beforeCommit, type RawQueryable, transactionBody } from "@prisma-resilience/kernel/serverDeadline"
import { commitStatus } from "./serverDeadline.js"
import { prismaLimits } from "@prisma-resilience/kernel/settings"

const errorClasses = { ConnectionError, EmptyResponseError, TimeoutError, TransactionError, QueryError } as const

/** `error` with what the commit check learned: its retry safety and why. */
const withSafety = (error: DatabaseError, safety: RetrySafety, reason: string): DatabaseError =>
  error._tag === "CircuitOpenError" ? error : new errorClasses[error._tag]({
    operation: error.operation,
    attempt: error.attempt,
    safety,
    code: error.code,
    message: `${error.message}; ${reason}`,
    cause: error.cause
  })

/** One transaction's fixed parts. */
interface Tx<A> {
  readonly name: string
  /** on `timer`, the `Database`'s clock */
  readonly started: number
  readonly timer: Timer
  readonly config: RetryPolicy.RetryConfig
  readonly deadlineMs: number
  readonly run: (tx: RawQueryable) => Promise<A>
  readonly options: TransactionOptions | undefined
}

const succeedAfter = <A>(t: Tx<A>, error: DatabaseError, n: number, outcome: string, value: A) =>
  Effect.andThen(
    Effect.logWarning(
      `${t.name} attempt ${n}/${RetryPolicy.maxAttempts(t.config)} failed: ${describe(error)}; ${outcome}: it succeeded`
    ),
    Effect.sync(() => {
      recordDuration(t.timer, t.name, t.started)
      return value
    })
  )

/**
 * The connection failed while the transaction ran or committed: what the
 * attempt saw decides whether its outcome can be known.
 */
const afterFailure = <C extends PrismaClientLike, A>(
  e: Engine<C>,
  t: Tx<A>,
  error: DatabaseError,
  seen: BeforeCommit<A>,
  n: number,
  client: C
): Effect.Effect<A, DatabaseError> => {
  if (error.safety !== "ambiguous") return Effect.fail(error)
  if (seen.txid === undefined) {
    // COMMIT is only sent once the function returned; once the promise
    // failed, nothing of this attempt can commit. Our own timer is
    // different: the function may still be running.
    return error.code === ATTEMPT_TIMEOUT
      ? Effect.fail(error)
      : Effect.fail(withSafety(error, "transaction", "it failed before COMMIT, so it was rolled back"))
  }
  if (seen.txid === null) {
    Metrics.record(Metrics.commitVerifications, 1, Metrics.verificationLabels(t.name, "no_writes"))
    return succeedAfter(t, error, n, "the transaction wrote nothing, so its commit did not matter", seen.value as A)
  }
  const left = Math.min(t.config.attemptTimeoutMs, t.deadlineMs - e.guard.clock.currentTimeMillisUnsafe())
  return Effect.flatMap(commitStatus(e.guard.timer, client as unknown as RawQueryable, seen, left, t.name, n), (status) => {
    Metrics.record(Metrics.commitVerifications, 1, Metrics.verificationLabels(t.name, status))
    switch (status) {
      case "committed":
        return succeedAfter(t, error, n, `txid_status(${seen.txid}) says committed`, seen.value as A)
      case "aborted":
        return Effect.fail(withSafety(error, "transaction", `txid_status(${seen.txid}) says it was rolled back`))
      case "unknown":
        return Effect.fail(withSafety(error, "ambiguous", `commit outcome unknown: txid_status(${seen.txid}) did not tell`))
    }
  })
}

/** Attempt `n`: on the writer found by a running search, if any, else on the current client. */
const attemptOf = <C extends PrismaClientLike, A>(e: Engine<C>, t: Tx<A>) => {
  const attempt = ({ attempt: n, timeoutMs }: RetryPolicy.AttemptInfo): Effect.Effect<A, DatabaseError> => {
    const now = () => e.guard.clock.currentTimeMillisUnsafe()
    if (n > 1 && e.topology.discovering()) {
      return Effect.andThen(
        e.topology.awaitWriter(t.deadlineMs, now(), t.name, n),
        Effect.suspend(() => attempt({ attempt: n, timeoutMs: RetryPolicy.attemptTimeout(t.config, t.deadlineMs, now()) }))
      )
    }
    const attemptStarted = e.guard.timer.now()
    const client = e.primary.client
    const seen = beforeCommit<A>()
    const body = transactionBody(t.run, () => timeoutMs - (e.guard.timer.now() - attemptStarted), e.server.marginMs, seen)
    const send = client as unknown as { $transaction: (...args: Array<unknown>) => PromiseLike<A> }
    return guardedAttempt(
      e.guard,
      () => send.$transaction(body, prismaLimits(e.server, e.pool, t.options, timeoutMs)),
      // The attempt's own bound, not a second longer: Prisma's timeout (set
      // just inside it) rolls back, this one ends the request.
      timeoutMs,
      t.name,
      n,
      t.started,
      (error) => afterFailure(e, t, error, seen, n, client)
    ).pipe(Effect.withSpan("Database.attempt", { attributes: { "db.operation": t.name, attempt: n } }))
  }
  return attempt
}

/** `Database.transaction` in `fiber`. */
export const transactionIn = <C extends PrismaClientLike, C2, A>(
  e: Engine<C>,
  fiber: Fiber.Fiber<unknown, unknown>,
  f: (tx: TransactionClient<C2>) => Promise<A>,
  options: TransactionOptions | undefined
): Effect.Effect<A, DatabaseError> => {
  if (e.topology.active) {
    if (options?.replica === true && e.replicas.size > 0) return routedTransaction(e, fiber, f, options)
    if (e.topology.discovering()) {
      return afterDiscovery(e, fiber, options?.operation ?? "$transaction", e.ops.transaction(f, options))
    }
  }
  const config = merge(e.retryConfig, options?.retry)
  const t: Tx<A> = {
    name: options?.operation ?? "$transaction",
    started: e.guard.timer.now(),
    timer: e.guard.timer,
    config,
    deadlineMs: deadlineIn(fiber, config, nowIn(fiber)),
    run: f as unknown as (tx: RawQueryable) => Promise<A>,
    options
  }
  return RetryPolicy.retry(attemptOf(e, t), {
    config,
    operation: t.name,
    kind: options?.idempotent ? "idempotent-write" : "transaction",
    budget: e.guard.budget,
    overloaded: e.guard.overloaded
  }).pipe(
    Effect.tapError(() => Effect.sync(() => recordDuration(e.guard.timer, t.name, t.started))),
    Effect.withSpan("Database.transaction", { attributes: { "db.operation": t.name } }),
    (self) => e.replicas.size > 0 ? Effect.andThen(markWrote, self) : self
  )
}

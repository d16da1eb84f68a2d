/**
 * Opted-in reads and read-only transactions on replicas: one attempt on a
 * replica that is up and within the lag limit (measured against the writer);
 * the writer's ordinary path when there is none, when this fiber wrote
 * before (read-your-writes), or when that attempt fails with anything but an
 * answer. A write is never sent to a replica.
 */
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { PrismaClientLike, QueryOptions, TransactionClient, TransactionOptions } from "../DatabaseService.js"
import type { DatabaseError } from "../Errors.js"
import type { RoutingReason } from "@prisma-resilience/kernel/topology"
import * as Metrics from "./metrics.js"
import * as RetryPolicy from "../RetryPolicy.js"
import { newRecording, recordAttempt } from "@prisma-resilience/kernel/recording"
import { guardedAttempt } from "./attempt.js"
import { describe } from "@prisma-resilience/kernel/describe"
import { deadlineIn, type Engine, isLazy, merge, wroteHere } from "./engine.js"
import type * as Topology from "./topology.js"
import { prismaLimits } from "@prisma-resilience/kernel/settings"

const routedTo = (name: string, target: "replica" | "primary", reason: RoutingReason) =>
  Metrics.record(Metrics.replicaRouting, 1, Metrics.routingLabels(name, target, reason))

/** What one routed operation needs: its options, the writer's path, and how to send it to a replica. */
interface Route<C extends PrismaClientLike, A> {
  readonly options: QueryOptions | TransactionOptions
  readonly operation: string
  /** the ordinary path on the writer, under the same deadline */
  readonly onWriter: Effect.Effect<A, DatabaseError>
  /** starts the attempt on `replica`; undefined when it must go to the writer after all (a write) */
  readonly send: (replica: Topology.Replica<C>, timeoutMs: number) => (() => PromiseLike<A>) | undefined
}

/** The one routing decision, for queries and transactions alike. */
const route = <C extends PrismaClientLike, A>(e: Engine<C>, fiber: Fiber.Fiber<unknown, unknown>, r: Route<C, A>): Effect.Effect<A, DatabaseError> => {
  if (fiber.getRef(wroteHere)) {
    routedTo(e.name, "primary", "read_your_writes")
    return r.onWriter
  }
  const now = e.guard.clock.currentTimeMillisUnsafe()
  const picked = e.topology.pick(now)
  if (typeof picked === "string") {
    routedTo(e.name, "primary", picked)
    return r.onWriter
  }
  const config = merge(e.retryConfig, r.options.retry)
  const deadlineMs = deadlineIn(fiber, config, now)
  const timeoutMs = RetryPolicy.attemptTimeout(config, deadlineMs, now)
  const send = r.send(picked, timeoutMs)
  if (send === undefined) return r.onWriter
  return guardedAttempt(
    e.replicas.get(picked)!.guard,
    () =>
      send().then((value) => {
        routedTo(e.name, "replica", "healthy")
        return value
      }),
    timeoutMs,
    r.operation,
    1,
    e.guard.timer.now(),
    (error) => {
      // An answer (a unique violation, a missing row) is the answer.
      if (error.safety === "never" && error._tag !== "CircuitOpenError") return Effect.fail(error)
      routedTo(e.name, "primary", "fallback")
      return Effect.andThen(
        Effect.logDebug(`${r.operation} on replica ${picked.name} failed: ${describe(error)}; running it on the writer`),
        Effect.provideService(r.onWriter, RetryPolicy.currentDeadline, deadlineMs)
      )
    }
  )
}

/** An opted-in read (`query(f, { replica: true })`). */
export const routed = <C extends PrismaClientLike, C2, A>(
  e: Engine<C>,
  fiber: Fiber.Fiber<unknown, unknown>,
  f: (client: C2) => PromiseLike<A>,
  options: QueryOptions
): Effect.Effect<A, DatabaseError> => {
  const onPrimary = { ...options, replica: false }
  const recording = newRecording()
  // Whatever ran on the replica's view stops there once the query goes to the writer.
  const onWriter = Effect.suspend(() => {
    recording.fenced = true
    return e.ops.queryIn(fiber, f, onPrimary)
  })
  return route(e, fiber, {
    options,
    get operation() {
      return options.operation ?? recording.operation ?? "query"
    },
    onWriter,
    send: (replica) => {
      let result: PromiseLike<A>
      try {
        result = recordAttempt(replica.client, f as unknown as (client: C) => PromiseLike<A>, recording)
      } catch {
        return undefined
      }
      // Not sent yet (a Prisma promise is lazy): a write goes to the writer,
      // whatever the caller declared.
      if (recording.kind !== "read" || (options.kind ?? "read") !== "read") {
        if (!isLazy(result)) result.then(undefined, () => {})
        return undefined
      }
      return () => result
    }
  })
}

/** A read-only transaction opted in to replicas (`transaction(f, { replica: true })`). */
export const routedTransaction = <C extends PrismaClientLike, C2, A>(
  e: Engine<C>,
  fiber: Fiber.Fiber<unknown, unknown>,
  f: (tx: TransactionClient<C2>) => Promise<A>,
  options: TransactionOptions
): Effect.Effect<A, DatabaseError> =>
  route(e, fiber, {
    options,
    operation: options.operation ?? "$transaction",
    onWriter: e.ops.transaction(f, { ...options, replica: false }),
    send: (replica, timeoutMs) => () =>
      (replica.client as unknown as { $transaction: (...args: Array<unknown>) => PromiseLike<A> }).$transaction(
        f,
        prismaLimits(e.server, e.pool, options, timeoutMs)
      )
  })

/**
 * The guards of one `Database`: the writer's (its retry budget, circuit
 * breaker and query-path health, which also hears how a failover shows) and
 * one per replica, and what happens to them when a search finds a new
 * writer.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as CircuitBreaker from "@prisma-resilience/kernel/circuitBreaker"
import type { PoolStats, PrismaClientLike, Settings } from "../DatabaseService.js"
import type { DatabaseError } from "../Errors.js"
import { isPoolWait } from "@prisma-resilience/kernel/classify"
import * as QueryHealth from "@prisma-resilience/kernel/queryHealth"
import * as TopologyKernel from "@prisma-resilience/kernel/topology"
import * as Metrics from "./metrics.js"
import { meteredBreaker, meteredBudget } from "./meteredGuards.js"
import type { Guard } from "./attempt.js"
import type { Timer } from "@prisma-resilience/kernel/timer"
import { tagAndCode } from "@prisma-resilience/kernel/describe"
import type * as Topology from "./topology.js"

export interface GuardOptions<C extends PrismaClientLike> {
  readonly name: string
  readonly settings: Settings
  readonly clock: Clock.Clock
  /** one for the whole `Database`: one sweeper, on `clock` */
  readonly timer: Timer
  readonly topology: Topology.Topology<C>
  readonly primary: { client: C; node: string | undefined }
  readonly poolStats: ((client: C) => PoolStats | undefined) | undefined
  readonly logTransition: (subject: string) => (transition: CircuitBreaker.Transition) => void
}

const nodeLabels = (name: string, node: string) => ({
  success: Metrics.nodeResultLabels(name, node, "success"),
  failure: Metrics.nodeResultLabels(name, node, "failure")
})

/** Whether `error` is a wait for a connection of a pool that is full now. */
const overloaded = <C extends PrismaClientLike>(o: GuardOptions<C>, client: () => C) => (error: DatabaseError) => {
  if (!isPoolWait(error.code)) return false
  // Prisma's P2024 is a pool wait by definition; pg-pool's message is also
  // what a slow new connection gives, so the counts decide.
  if (error.code === "P2024") return true
  const stats = o.poolStats?.(client())
  return stats !== undefined && (stats.totalCount >= o.settings.pool.max || stats.waitingCount > 0)
}

/** The writer's guard. */
export const writerGuard = <C extends PrismaClientLike>(o: GuardOptions<C>): Guard => {
  const labels = Metrics.databaseLabels(o.name)
  const { primary, topology } = o
  return {
    budget: meteredBudget(o.settings.retryBudget, labels),
    breaker: meteredBreaker(o.settings.circuitBreaker, o.logTransition("Circuit breaker"), labels),
    clock: o.clock,
    timer: o.timer,
    queryHealth: QueryHealth.make(o.settings.health),
    overloaded: overloaded(o, () => primary.client),
    generation: 0,
    node: topology.active && primary.node !== undefined ? nodeLabels(o.name, primary.node) : undefined,
    // A connection that failed, or a node that says it is not the writer
    // (any more), is how a failover shows: look for the writer once.
    suspect: topology.writerMode
      ? (error) => {
        if ((error._tag === "ConnectionError" && !isPoolWait(error.code)) || TopologyKernel.isWrongNode(error.code)) {
          topology.discover(`${tagAndCode(error)} on ${primary.node}`)
        }
        return error.code === "25006"
      }
      : undefined
  }
}

/** Opted-in reads: one guard per replica, its breaker the topology's. */
export const replicaGuards = <C extends PrismaClientLike>(o: GuardOptions<C>): ReadonlyMap<Topology.Replica<C>, { readonly guard: Guard }> =>
  new Map(o.topology.replicas.map((replica) => {
    const guard: Guard = {
      budget: meteredBudget(o.settings.retryBudget, Metrics.nodeLabels(o.name, replica.name)),
      breaker: replica.breaker,
      clock: o.clock,
      timer: o.timer,
      queryHealth: QueryHealth.make(o.settings.health),
      overloaded: overloaded(o, () => replica.client),
      generation: 0,
      node: nodeLabels(o.name, replica.name)
    }
    return [replica, { guard }] as const
  }))

/**
 * What the search for the writer calls when it found another one: the
 * queries move to its client, and what the old writer did says nothing about
 * the new one (breaker and query-path health start over; attempts of the old
 * generation no longer count).
 */
export const onNewWriter = <C extends PrismaClientLike>(o: GuardOptions<C>, guard: Guard) => (client: C, node: string): Effect.Effect<C> =>
  Effect.sync(() => {
    const old = o.primary.client
    o.primary.client = client
    o.primary.node = node
    guard.generation++
    guard.node = nodeLabels(o.name, node)
    guard.breaker.reset(`the writer is ${node} now`)
    guard.queryHealth.reset(o.clock.currentTimeMillisUnsafe())
    return old
  })

// What the areas of the suite share: their settings, the servers and proxies
// a test owns (released after its describe block), and small probes. Nothing
// here knows a binding: it deals in BoundDatabase and devdb only.
import {
  type Cluster,
  createCluster,
  startCluster,
  startProxy,
  type TcpProxy,
  withConnection
} from "@prisma-resilience/devdb"
import type { PartialSettings } from "@prisma-resilience/kernel/settings"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll, inject } from "vitest"
import { createSchema } from "../../packages/core-effect3/test/fixture/client.js"
import type { Binding, BoundDatabase, OpenOptions } from "../binding.js"

/** The run's shared server (globalSetup): for tests that do not stop or restart it. */
export const sharedUrl = (): string => inject("databaseUrl")

/** Settings every test starts from: short warm-up backoff, a bounded shutdown. */
const base: PartialSettings = {
  warmup: { timeoutMs: 10_000, attemptTimeoutMs: 3000, backoffMs: 100, backoffMaxMs: 500, healthTimeoutMs: 1000, shutdownTimeoutMs: 3000 },
  pool: { max: 10, connectionTimeoutMillis: 2000, idleTimeoutMillis: 10_000 }
}

/** `base` with `overrides` laid over it group by group. */
export const settings = (overrides: PartialSettings = {}): PartialSettings => {
  const merged: Record<string, unknown> = { ...base }
  for (const [group, values] of Object.entries(overrides)) {
    merged[group] = { ...(base as Record<string, object | undefined>)[group], ...values }
  }
  return merged as PartialSettings
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
export const unique = (what: string) => `${what}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`

/** Runs one statement on a connection of its own, outside the layer. */
export const sql = <R extends Record<string, unknown> = Record<string, any>>(url: string, text: string, params: Array<unknown> = []) =>
  withConnection(url, async (client) => (await client.query<R>(text, params)).rows)

/** orders whose reference starts with `prefix`, counted outside the layer */
export const ordersLike = async (url: string, prefix: string) =>
  (await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM purchase_order WHERE reference LIKE $1", [`${prefix}%`]))[0]!.n

/**
 * What a describe block owns: databases opened through the binding, servers
 * and proxies, released in reverse order after the block (databases before
 * the proxies and servers under them).
 */
export const resources = () => {
  const releases: Array<() => Promise<unknown>> = []
  afterAll(async () => {
    for (const release of releases.splice(0).reverse()) await release().catch(() => {})
  }, 60_000)
  const own = <A>(value: A, release: (value: A) => Promise<unknown>): A => {
    releases.push(() => release(value))
    return value
  }
  return {
    open: (binding: Binding, options: OpenOptions): BoundDatabase => own(binding.open(options), (db) => db.close()),
    /** a server of the test's own, started with the fixture's tables, or only created (not running) */
    cluster: async (start = true): Promise<Cluster> => {
      const options = { dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "behaviour-")) }
      const cluster = own(start ? await startCluster(options) : await createCluster(options), (c) => c.destroy())
      if (start) await createSchema(cluster.url)
      return cluster
    },
    /** a loopback fault proxy in front of `url`, and `url` through it */
    proxy: async (url: string): Promise<{ proxy: TcpProxy; url: string }> => {
      const target = new URL(url)
      const proxy = own(await startProxy({ host: target.hostname, port: Number(target.port) }), (p) => p.close())
      target.port = String(proxy.port)
      return { proxy, url: target.toString() }
    },
    own
  }
}

/** health's verdict as one word: `pass` or the failure's reason */
export const verdict = async (db: BoundDatabase) => {
  const health = await db.health()
  return health.status === "pass" ? "pass" : health.reason
}

/**
 * Asks health every `pollMs` (the only traffic) until it passes or `limitMs`
 * ran out: the reasons seen in order, and after how many ms it passed.
 */
export const pollHealth = async (db: BoundDatabase, limitMs: number, pollMs = 200) => {
  const started = Date.now()
  const seen: Array<string> = []
  for (;;) {
    const now = Date.now()
    const reason = await verdict(db)
    if (seen.at(-1) !== reason) seen.push(reason)
    if (reason === "pass") return { seen, passedAfterMs: now - started as number | undefined }
    if (now - started > limitMs) return { seen, passedAfterMs: undefined }
    await sleep(pollMs)
  }
}

/** Waits (up to 15 s) until health passes: warm-up done, for a test whose requests may not wait for it. */
export const whenReady = async (db: BoundDatabase) => {
  const { passedAfterMs, seen } = await pollHealth(db, 15_000, 50)
  if (passedAfterMs === undefined) throw new Error(`health did not pass within 15 s: ${seen.join(" → ")}`)
}

/** every reason health gave while polled for `ms` */
export const reasonsFor = async (db: BoundDatabase, ms: number, pollMs = 200) => {
  const reasons = new Set<string>()
  const until = Date.now() + ms
  while (Date.now() < until) {
    reasons.add(await verdict(db))
    await sleep(pollMs)
  }
  return [...reasons]
}

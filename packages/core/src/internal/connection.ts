/**
 * The connection strings a `Database` is given (`url`, `replicaUrls`, or
 * DATABASE_URL and DATABASE_REPLICA_URLS), checked once at start-up. Errors
 * name the setting that is wrong and never hold a connection string.
 */
import * as Redacted from "effect/Redacted"
import { RetryConfigError } from "../Errors.js"
import { ConnectionStringError } from "@prisma-resilience/kernel/connectionString"
import * as TopologyKernel from "@prisma-resilience/kernel/topology"

export interface ConnectionStrings {
  readonly url: string | undefined
  readonly replicaUrls: ReadonlyArray<string>
  /** the nodes of a multi-host `url`, or undefined for a plain one */
  readonly plan: TopologyKernel.Plan | undefined
}

const plainString = (value: string | Redacted.Redacted<string>) => Redacted.isRedacted(value) ? Redacted.value(value) : value

const invalid = (setting: string, error: unknown) =>
  new RetryConfigError({
    message: `invalid connection string in ${setting}: ${
      error instanceof ConnectionStringError || error instanceof RangeError ? error.message : "not a postgresql:// URL"
    }`
  })

/** Checks `url` and `replicaUrls`; throws a `RetryConfigError` that names the setting. */
export const checkConnectionStrings = (
  url: string | Redacted.Redacted<string> | undefined,
  replicaUrls: ReadonlyArray<string | Redacted.Redacted<string>> | undefined
): ConnectionStrings => {
  const plain = url === undefined ? undefined : plainString(url)
  let plan: TopologyKernel.Plan | undefined
  try {
    // A plain string goes to pg as it is (a socket directory in `?host=` too): only its scheme is checked.
    if (plain !== undefined && !/^postgres(ql)?:\/\//i.test(plain)) throw new ConnectionStringError("the connection string is not a postgresql:// URL")
    plan = plain === undefined ? undefined : TopologyKernel.plan(plain)
  } catch (error) {
    throw invalid("DATABASE_URL (or the `url` option)", error)
  }
  try {
    const replicas = (replicaUrls ?? []).flatMap((entry) => TopologyKernel.splitUrls(plainString(entry)))
    for (const replica of replicas) TopologyKernel.nameOf(replica)
    return { url: plain, replicaUrls: replicas, plan }
  } catch (error) {
    throw invalid("DATABASE_REPLICA_URLS (or the `replicaUrls` option)", error)
  }
}

/**
 * `layerConfig` and `createResilientPrisma` read the connection string from
 * DATABASE_URL: without it (and without `url`) a client factory that leaves
 * the string to pg would spend the whole warm-up on pg's default,
 * 127.0.0.1:5432, before failing. Said at once instead.
 */
export const missingUrl = () =>
  new RetryConfigError({
    message: "DATABASE_URL is not set and no `url` option was given: set DATABASE_URL to the database's " +
      "postgresql:// connection string (or pass `url`), and hand `pool.connectionString` to PrismaPg/pg.Pool"
  })

// Two real servers as the nodes of one multi-host connection string: one
// password for both, read-only by `default_transaction_read_only` (what
// `target_session_attrs=read-write` tests, without a replication pair).
// Shared by core's Topology test and the behaviour suite.
import { type Cluster, withConnection } from "@prisma-resilience/devdb"

/** Gives `b`'s role `a`'s password (one connection string holds one); `b`'s URL with it. */
export const sharePassword = async (a: Cluster, b: Cluster): Promise<string> => {
  const { password, username } = new URL(a.url)
  await withConnection(b.url, (client) =>
    client.query(`ALTER ROLE "${decodeURIComponent(username)}" PASSWORD '${decodeURIComponent(password)}'`))
  const url = new URL(b.url)
  url.password = password
  return url.toString()
}

/**
 * Turns `default_transaction_read_only` on or off at the server of `url` and
 * reloads: a backend applies it when it next reads its configuration.
 */
export const setReadOnly = (url: string, on: boolean) =>
  withConnection(url, async (client) => {
    await client.query(`ALTER SYSTEM SET default_transaction_read_only = ${on ? "on" : "off"}`)
    await client.query("SELECT pg_reload_conf()")
  })

/** `postgresql://u:p@127.0.0.1:A,127.0.0.1:B/db?target_session_attrs=read-write`: A's string with B's port added. */
export const multiHostUrl = (a: Cluster, b: Cluster): string => {
  const url = new URL(a.url)
  url.searchParams.set("target_session_attrs", "read-write")
  const multi = url.href.replace(`@127.0.0.1:${a.port}/`, `@127.0.0.1:${a.port},127.0.0.1:${b.port}/`)
  if (multi === url.href) throw new Error("the first server's URL does not name 127.0.0.1 with its port")
  return multi
}

/**
 * libpq's multi-host connection strings
 * (`postgresql://user:pass@127.0.0.1:5433,127.0.0.1:5434/app?target_session_attrs=read-write`),
 * which node-postgres does not understand: the host list, the session
 * attributes asked for, and one single-host string per host for a driver
 * that takes one. The WHATWG URL parser rejects a host list, so the string is
 * split by hand. Never log what goes in or comes out: it holds the password.
 *
 * @since 0.1.0
 */

/**
 * libpq's `target_session_attrs`: which kind of node a connection must reach
 * (`read-write`: the writer; `any`, the default: the first that answers).
 *
 * @since 0.1.0
 */
export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

/**
 * One host of the list, with its port (5432 when the string gives none).
 *
 * @since 0.1.0
 */
export interface HostPort {
  /** a name or an address; an IPv6 address without its brackets */
  readonly host: string
  readonly port: number
}

/**
 * A parsed connection string: its hosts in order, what it asks of the node,
 * and a single-host string per host.
 *
 * @since 0.1.0
 */
export interface MultiHost {
  readonly hosts: ReadonlyArray<HostPort>
  /** `any` when the string does not say */
  readonly targetSessionAttrs: TargetSessionAttrs
  /** the same connection for `hosts[index]` alone, without `target_session_attrs` */
  readonly forHost: (index: number) => string
}

const attrs: ReadonlySet<string> = new Set(["any", "read-write", "read-only", "primary", "standby", "prefer-standby"])

/**
 * Thrown for a connection string that cannot be used (not a PostgreSQL URL,
 * an empty host, a bad port, an unknown `target_session_attrs`); its message
 * never contains the string.
 *
 * @since 0.1.0
 */
export class ConnectionStringError extends Error {
  override readonly name = "ConnectionStringError"
}

const parseHost = (text: string, defaultPort: number): HostPort => {
  // [::1]:5432, [::1], host:5432, host
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
  const [host, port] = bracketed ? [bracketed[1]!, bracketed[2]] : (() => {
    const colon = text.lastIndexOf(":")
    return colon === -1 ? [text, undefined] : [text.slice(0, colon), text.slice(colon + 1)]
  })()
  if (host === "") throw new ConnectionStringError("a host in the connection string is empty")
  if (port !== undefined && !/^\d{1,5}$/.test(port)) {
    throw new ConnectionStringError("a port in the connection string is not a number")
  }
  const number = port === undefined || port === "" ? defaultPort : Number(port)
  if (number < 1 || number > 65535) throw new ConnectionStringError("a port in the connection string is out of range")
  return { host, port: number }
}

/**
 * Parses a `postgres://` or `postgresql://` URL with one host or several.
 * Throws `ConnectionStringError` for a malformed one, an empty host, a bad
 * port or an unknown `target_session_attrs`. `forHost` gives the password
 * back: redact before logging.
 *
 * @example
 * ```ts
 * import { parseMultiHost, redact } from "@prisma-resilience/kernel"
 *
 * const parsed = parseMultiHost("postgresql://app:secret@127.0.0.1:5433,127.0.0.1:5434/app?target_session_attrs=read-write")
 * parsed.hosts              // [{ host: "127.0.0.1", port: 5433 }, { host: "127.0.0.1", port: 5434 }]
 * parsed.targetSessionAttrs // "read-write"
 * redact(parsed.forHost(1)) // "postgresql://***@127.0.0.1:5434/app"
 * ```
 *
 * @since 0.1.0
 */
export const parseMultiHost = (url: string): MultiHost => {
  const match = /^(postgres(?:ql)?:\/\/)(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url.trim())
  if (match === null) throw new ConnectionStringError("the connection string is not a postgresql:// URL")
  const [, scheme, userinfo, hostList, path, query] = match
  const hosts = hostList!.split(",").map((part) => parseHost(part.trim(), 5432))
  const params = new URLSearchParams(query?.slice(1) ?? "")
  const wanted = params.get("target_session_attrs") ?? "any"
  if (!attrs.has(wanted)) {
    throw new ConnectionStringError(`target_session_attrs must be one of ${[...attrs].join(", ")}`)
  }
  params.delete("target_session_attrs")
  const rest = params.toString()
  return {
    hosts,
    targetSessionAttrs: wanted as TargetSessionAttrs,
    forHost: (index) => {
      const target = hosts[index]
      if (target === undefined) throw new RangeError(`no host ${index} in a list of ${hosts.length}`)
      const host = target.host.includes(":") ? `[${target.host}]` : target.host
      return `${scheme}${userinfo === undefined ? "" : `${userinfo}@`}${host}:${target.port}${path ?? ""}${
        rest === "" ? "" : `?${rest}`
      }`
    }
  }
}

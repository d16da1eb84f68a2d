/**
 * libpq's multi-host connection strings
 * (`postgresql://user:pass@127.0.0.1:5433,127.0.0.1:5434/app?target_session_attrs=read-write`),
 * which node-postgres does not understand: the host list, the session
 * attributes asked for, and one single-host string per host for a driver
 * that takes one. The WHATWG URL parser rejects a host list, so the string is
 * split by hand. Never log what goes in or comes out: it holds the password.
 */

export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"

export interface HostPort {
  readonly host: string
  readonly port: number
}

export interface MultiHost {
  readonly hosts: ReadonlyArray<HostPort>
  readonly targetSessionAttrs: TargetSessionAttrs
  /** the same connection for `hosts[index]` alone, without `target_session_attrs` */
  readonly forHost: (index: number) => string
}

const attrs: ReadonlySet<string> = new Set(["any", "read-write", "read-only", "primary", "standby", "prefer-standby"])

/** Thrown for a string that is not a PostgreSQL URL; its message never contains the string. */
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

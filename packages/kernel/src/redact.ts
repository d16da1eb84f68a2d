/**
 * Removes credentials from text that may have come from a driver or from
 * Prisma: connection strings with a userinfo part, `password=` key-values.
 *
 * @since 0.1.0
 */
const urlCredentials = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]+)(:[^\s/@]*)?@/gi
const keyValuePassword = /\b(password|passwd|pwd)\s*[=:]\s*("[^"]*"|'[^']*'|[^\s;&,]+)/gi

/**
 * `text` with the userinfo of every URL in it replaced by `***` and the value
 * of every `password=`, `passwd=` or `pwd=` too; the rest is left as it was.
 *
 * @example
 * ```ts
 * import { redact } from "@prisma-resilience/kernel"
 *
 * redact("connect to postgresql://app:secret@127.0.0.1:5432/app failed")
 * // "connect to postgresql://***@127.0.0.1:5432/app failed"
 * redact("host=127.0.0.1 user=app password=secret dbname=app")
 * // "host=127.0.0.1 user=app password=*** dbname=app"
 * ```
 *
 * @since 0.1.0
 */
export const redact = (text: string): string =>
  text.replace(urlCredentials, "$1***@").replace(keyValuePassword, "$1=***")

/**
 * A single line suitable for logs and error messages: no code frames, no
 * secrets. Of a Prisma "Invalid `prisma.x.y()` invocation" message it keeps
 * the last line (the reason); it cuts the line at `max` characters.
 *
 * @since 0.1.0
 */
export const summarize = (text: string, max = 300): string => {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line.length > 0)
  // Prisma prefixes messages with "Invalid `prisma.x.y()` invocation in <file>"
  // and a code frame; the last line is the actual reason.
  const reason = lines.length > 1 && /invocation/.test(lines[0]!) ? lines[lines.length - 1]! : (lines[0] ?? "")
  const clean = redact(reason)
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean
}

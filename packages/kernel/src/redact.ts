/**
 * Removes credentials from text that may have come from a driver or from
 * Prisma: connection strings with a userinfo part, `password=` key-values.
 */
const urlCredentials = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]+)(:[^\s/@]*)?@/gi
const keyValuePassword = /\b(password|passwd|pwd)\s*[=:]\s*("[^"]*"|'[^']*'|[^\s;&,]+)/gi

export const redact = (text: string): string =>
  text.replace(urlCredentials, "$1***@").replace(keyValuePassword, "$1=***")

/** A single line suitable for logs and error messages: no code frames, no secrets. */
export const summarize = (text: string, max = 300): string => {
  const lines = text.split("\n").map((line) => line.trim()).filter((line) => line.length > 0)
  // Prisma prefixes messages with "Invalid `prisma.x.y()` invocation in <file>"
  // and a code frame; the last line is the actual reason.
  const reason = lines.length > 1 && /invocation/.test(lines[0]!) ? lines[lines.length - 1]! : (lines[0] ?? "")
  const clean = redact(reason)
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean
}

/**
 * The HTTP server's settings, from the environment. The database settings
 * (retries, budget, warm-up, pool) are core's: see `RetryPolicy.config`,
 * `warmupConfig` and `poolConfig`.
 */
import { Config } from "effect"

export interface ServerConfig {
  /** PORT, default 3000; 0 picks a free port */
  readonly port: number
  /** HOST, default 0.0.0.0 */
  readonly host: string
  /** MAX_BODY_BYTES, default 65536: larger request bodies are answered 400 */
  readonly maxBodyBytes: number
  /** RETRY_AFTER_SECONDS, default 1: `Retry-After` of every 503 */
  readonly retryAfterSeconds: number
  /** SHUTDOWN_DELAY_MS, default 0: after SIGTERM, how long health fails while new connections are still accepted */
  readonly shutdownDelayMs: number
  /** SHUTDOWN_DRAIN_MS, default 10000: how long in-flight requests may take to finish after that */
  readonly drainTimeoutMs: number
}

const nonNegative = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a non-negative integer", validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )

export const config: Config.Config<ServerConfig> = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "must be a port number from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(3000)
  ),
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  maxBodyBytes: Config.integer("MAX_BODY_BYTES").pipe(
    Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(65_536)
  ),
  retryAfterSeconds: nonNegative("RETRY_AFTER_SECONDS", 1),
  shutdownDelayMs: nonNegative("SHUTDOWN_DELAY_MS", 0),
  drainTimeoutMs: nonNegative("SHUTDOWN_DRAIN_MS", 10_000)
})

/**
 * The HTTP server's settings, from the environment. The database settings
 * (retries, budget, warm-up, pool) are core's: see `RetryPolicy.config`,
 * `warmupConfig` and `poolConfig`.
 */
import { Setting } from "@prisma-resilience/core"
import { Config } from "effect"

/** @since 0.1.0 */
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
  /**
   * SHUTDOWN_IDLE_GRACE_MS, default 1000: how long a connection accepted
   * before the listener closed may still deliver its request (served with
   * `Connection: close`) before it is closed
   */
  readonly idleGraceMs: number
}

/** @since 0.1.0 */
export const config: Config.Config<ServerConfig> = Config.all({
  port: Setting.integer("PORT", 3000, { min: 0, max: 65535, range: "a port number from 0 to 65535" }),
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  maxBodyBytes: Setting.integer("MAX_BODY_BYTES", 65_536, { min: 1, range: "a positive integer number of bytes" }),
  retryAfterSeconds: Setting.integer("RETRY_AFTER_SECONDS", 1, { min: 0, range: "a non-negative integer number of seconds" }),
  shutdownDelayMs: Setting.milliseconds("SHUTDOWN_DELAY_MS", 0, 0),
  drainTimeoutMs: Setting.milliseconds("SHUTDOWN_DRAIN_MS", 10_000, 0),
  idleGraceMs: Setting.milliseconds("SHUTDOWN_IDLE_GRACE_MS", 1000, 0)
})

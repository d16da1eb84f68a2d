/**
 * A `Database`'s settings as Effect `Config`: each group read from its `DB_*`
 * variables (the kernel's table, `@prisma-resilience/kernel/variables`, holds
 * the names, ranges and documented defaults), DATABASE_URL and
 * DATABASE_REPLICA_URLS (options given in code are laid over them with the
 * kernel's `overlay`).
 *
 * @since 0.2.0
 */
import * as Kernel from "@prisma-resilience/kernel/settings"
import * as Config from "effect/Config"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Setting from "./internal/settingConfig.js"

/**
 * Every setting's documented default, as `make` and `layer` use them (no
 * environment read).
 *
 * @since 0.1.0
 */
export const defaults: Kernel.Settings = Kernel.defaults

/**
 * Every `DB_*` setting, read from the environment and checked, with the
 * documented defaults for those not set.
 *
 * @since 0.1.0
 */
export const config: Config.Config<Kernel.Settings> = Config.all({
  retry: Setting.group("retry"),
  warmup: Setting.group("warmup"),
  pool: Setting.group("pool"),
  serverTimeouts: Setting.group("serverTimeouts"),
  retryBudget: Setting.group("retryBudget"),
  circuitBreaker: Setting.group("circuitBreaker"),
  health: Setting.group("health"),
  topology: Setting.group("topology")
})

/**
 * DATABASE_URL and DATABASE_REPLICA_URLS (whitespace- or comma-separated),
 * both optional, both redacted.
 *
 * @since 0.1.0
 */
export const connectionConfig: Config.Config<{
  readonly url: Option.Option<Redacted.Redacted<string>>
  readonly replicaUrls: Option.Option<Redacted.Redacted<string>>
}> = Config.all({
  url: Config.option(Config.Redacted("DATABASE_URL")),
  replicaUrls: Config.option(Config.Redacted("DATABASE_REPLICA_URLS"))
})

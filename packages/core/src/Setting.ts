/**
 * Settings read through Effect `Config` and checked when they are read: a
 * value that is not a number, or out of range, fails with a `ConfigError` that
 * names the variable, the allowed range and what was given (`Invalid data at
 * DB_CIRCUIT_RESET_MS: "must be a positive integer number of milliseconds; got
 * "0""`), so a service stops at start-up instead of running with a setting it
 * misread. The variables, their ranges and defaults are the kernel's table
 * (`@prisma-resilience/kernel/variables`); this module is its Effect face.
 *
 * @since 0.1.0
 */
import * as Variables from "@prisma-resilience/kernel/variables"
import type * as Config from "effect/Config"
import { variable } from "./internal/settingConfig.js"

export type { IntegerRange, NumberRange } from "@prisma-resilience/kernel/variables"

/**
 * A whole number within `min`…`max` (inclusive), `fallback` when unset.
 *
 * @example
 * ```ts
 * import { Setting } from "@prisma-resilience/core"
 * const port = Setting.integer("PORT", 3000, { min: 0, max: 65535 })
 * ```
 *
 * @since 0.1.0
 */
export const integer = (name: string, fallback: number, options: Variables.IntegerRange): Config.Config<number> =>
  variable({ name, parser: Variables.integer(options) }, fallback)

/**
 * A finite number within the range, `fallback` when unset.
 *
 * @since 0.1.0
 */
export const number = (name: string, fallback: number, options: Variables.NumberRange): Config.Config<number> =>
  variable({ name, parser: Variables.number(options) }, fallback)

/**
 * Whole milliseconds, at least `min` (default 1), `fallback` when unset.
 *
 * @since 0.1.0
 */
export const milliseconds = (name: string, fallback: number, min = 1): Config.Config<number> =>
  variable({ name, parser: Variables.milliseconds(min) }, fallback)

/**
 * `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`), `fallback` when unset.
 *
 * @since 0.1.0
 */
export const boolean = (name: string, fallback: boolean): Config.Config<boolean> =>
  variable({ name, parser: Variables.boolean }, fallback)

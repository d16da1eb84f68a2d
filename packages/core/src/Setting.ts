/**
 * Settings read through Effect `Config` and checked when they are read: a
 * value that is not a number, or out of range, fails with a `ConfigError` that
 * names the variable, the allowed range and what was given (`Invalid data at
 * DB_CIRCUIT_RESET_MS: "must be a positive integer number of milliseconds; got
 * "0""`), so a service stops at start-up instead of running with a setting it
 * misread.
 */
import { Config, ConfigError, Either } from "effect"

const checked = <A>(name: string, fallback: A, range: string, read: (raw: string) => A | undefined): Config.Config<A> =>
  Config.string(name).pipe(
    Config.mapOrFail((raw) => {
      const value = read(raw.trim())
      return value === undefined
        ? Either.left(ConfigError.InvalidData([], `must be ${range}; got ${JSON.stringify(raw)}`))
        : Either.right(value)
    }),
    Config.withDefault(fallback)
  )

export interface IntegerRange {
  readonly min: number
  readonly max?: number
  /** how the range reads in an error; default "an integer from min to max" */
  readonly range?: string
}

/** A whole number within `min`…`max` (inclusive), `fallback` when unset. */
export const integer = (name: string, fallback: number, options: IntegerRange): Config.Config<number> => {
  const max = options.max ?? Number.MAX_SAFE_INTEGER
  return checked(name, fallback, options.range ?? `an integer from ${options.min} to ${max}`, (raw) => {
    if (!/^[+-]?\d+$/.test(raw)) return undefined
    const n = Number(raw)
    return n >= options.min && n <= max ? n : undefined
  })
}

export interface NumberRange {
  /** exclusive lower bound */
  readonly above?: number
  /** inclusive lower bound */
  readonly min?: number
  /** inclusive upper bound */
  readonly max?: number
  readonly range: string
}

/** A finite number within the range, `fallback` when unset. */
export const number = (name: string, fallback: number, options: NumberRange): Config.Config<number> =>
  checked(name, fallback, options.range, (raw) => {
    if (raw === "" || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)) return undefined
    const n = Number(raw)
    if (!Number.isFinite(n)) return undefined
    if (options.above !== undefined && !(n > options.above)) return undefined
    if (options.min !== undefined && n < options.min) return undefined
    if (options.max !== undefined && n > options.max) return undefined
    return n
  })

/** Whole milliseconds, at least `min` (default 1), `fallback` when unset. */
export const milliseconds = (name: string, fallback: number, min = 1): Config.Config<number> =>
  integer(name, fallback, {
    min,
    range: min === 0
      ? "a non-negative integer number of milliseconds"
      : min === 1
      ? "a positive integer number of milliseconds"
      : `an integer number of milliseconds of at least ${min}`
  })

/** `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`), `fallback` when unset. */
export const boolean = (name: string, fallback: boolean): Config.Config<boolean> =>
  checked(name, fallback, "true or false", (raw) => {
    const value = raw.toLowerCase()
    if (["true", "yes", "on", "1"].includes(value)) return true
    if (["false", "no", "off", "0"].includes(value)) return false
    return undefined
  })

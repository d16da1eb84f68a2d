/**
 * The environment variables the settings are read from, and how each value
 * is checked: a value that is not a number, or out of range, is rejected with
 * a message that names the variable, the allowed range and what was given
 * (`DB_CIRCUIT_RESET_MS must be a positive integer number of milliseconds;
 * got "0"`), so a service stops at start-up instead of running with a
 * setting it misread. Core turns each entry into an Effect `Config`;
 * `fromEnv` reads them all without Effect.
 *
 * @since 0.2.0
 */
import { defaults, type Settings } from "./settings.js"

/**
 * How the text of one variable becomes a value: `undefined` when it is not
 * one, and the range an error names.
 *
 * @since 0.2.0
 */
export interface Parser<A> {
  readonly range: string
  readonly read: (raw: string) => A | undefined
}

/**
 * A whole number's bounds (inclusive); `range` is how the range reads in an
 * error, "an integer from min to max" by default.
 *
 * @since 0.1.0
 */
export interface IntegerRange {
  readonly min: number
  readonly max?: number
  readonly range?: string
}

/**
 * A whole number within `min`…`max` (inclusive).
 *
 * @since 0.2.0
 */
export const integer = (options: IntegerRange): Parser<number> => {
  const max = options.max ?? Number.MAX_SAFE_INTEGER
  return {
    range: options.range ?? `an integer from ${options.min} to ${max}`,
    read: (raw) => {
      if (!/^[+-]?\d+$/.test(raw)) return undefined
      const n = Number(raw)
      return n >= options.min && n <= max ? n : undefined
    }
  }
}

/**
 * A finite number's bounds: `above` exclusive, `min` and `max` inclusive.
 *
 * @since 0.1.0
 */
export interface NumberRange {
  readonly above?: number
  readonly min?: number
  readonly max?: number
  readonly range: string
}

/**
 * A finite number within the range.
 *
 * @since 0.2.0
 */
export const number = (options: NumberRange): Parser<number> => ({
  range: options.range,
  read: (raw) => {
    if (raw === "" || !/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw)) return undefined
    const n = Number(raw)
    if (!Number.isFinite(n)) return undefined
    if (options.above !== undefined && !(n > options.above)) return undefined
    if (options.min !== undefined && n < options.min) return undefined
    if (options.max !== undefined && n > options.max) return undefined
    return n
  }
})

/**
 * Whole milliseconds, at least `min` (default 1).
 *
 * @since 0.2.0
 */
export const milliseconds = (min = 1): Parser<number> =>
  integer({
    min,
    range: min === 0
      ? "a non-negative integer number of milliseconds"
      : min === 1
      ? "a positive integer number of milliseconds"
      : `an integer number of milliseconds of at least ${min}`
  })

/**
 * `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`).
 *
 * @since 0.2.0
 */
export const boolean: Parser<boolean> = {
  range: "true or false",
  read: (raw) => {
    const value = raw.toLowerCase()
    if (["true", "yes", "on", "1"].includes(value)) return true
    if (["false", "no", "off", "0"].includes(value)) return false
    return undefined
  }
}

/**
 * Comma-separated delays in ms (`500,1000`); `none` or nothing for no retries.
 *
 * @since 0.2.0
 */
export const delayList: Parser<ReadonlyArray<number>> = {
  range: `comma-separated non-negative integers (ms) such as "500,1000", or "none"`,
  read: (raw) => {
    if (raw === "" || raw === "none") return []
    const parts = raw.split(",").map((part) => part.trim())
    const delays = parts.map(Number)
    return delays.every((d, i) => parts[i] !== "" && Number.isInteger(d) && d >= 0) ? delays : undefined
  }
}

/**
 * One setting's variable and parser.
 *
 * @since 0.2.0
 */
export interface Variable<A> {
  readonly name: string
  readonly parser: Parser<A>
}

/**
 * The variable of every setting read from the environment, by group and
 * field (the pool's server-side limits and connection string are derived,
 * not read).
 *
 * @since 0.2.0
 */
export type Variables = { readonly [G in keyof Settings]: { readonly [K in keyof Settings[G]]?: Variable<Settings[G][K]> } }

const v = <A>(name: string, parser: Parser<A>): Variable<A> => ({ name, parser })

/**
 * Every `DB_*` variable: the table the configuration reference documents.
 *
 * @since 0.2.0
 */
export const variables: Variables = {
  retry: {
    delaysMs: v("DB_RETRY_DELAYS_MS", delayList),
    attemptTimeoutMs: v("DB_ATTEMPT_TIMEOUT_MS", milliseconds()),
    requestBudgetMs: v("DB_REQUEST_BUDGET_MS", milliseconds()),
    warmupWaitMs: v("DB_WARMUP_WAIT_MS", milliseconds(0)),
    jitter: v("DB_RETRY_JITTER", boolean)
  },
  warmup: {
    timeoutMs: v("DB_WARMUP_TIMEOUT_MS", milliseconds()),
    attemptTimeoutMs: v("DB_WARMUP_ATTEMPT_TIMEOUT_MS", milliseconds()),
    backoffMs: v("DB_WARMUP_BACKOFF_MS", milliseconds()),
    backoffMaxMs: v("DB_WARMUP_BACKOFF_MAX_MS", milliseconds()),
    healthTimeoutMs: v("DB_HEALTH_TIMEOUT_MS", milliseconds()),
    shutdownTimeoutMs: v("DB_SHUTDOWN_TIMEOUT_MS", milliseconds())
  },
  pool: {
    max: v("DB_POOL_MAX", integer({ min: 1, range: "a positive integer" })),
    connectionTimeoutMillis: v("DB_CONNECT_TIMEOUT_MS", milliseconds()),
    idleTimeoutMillis: v("DB_POOL_IDLE_TIMEOUT_MS", milliseconds())
  },
  serverTimeouts: {
    enabled: v("DB_SERVER_TIMEOUTS", boolean),
    marginMs: v("DB_SERVER_TIMEOUT_MARGIN_MS", milliseconds(0))
  },
  retryBudget: {
    maxTokens: v("DB_RETRY_BUDGET_MAX_TOKENS", number({ min: 0, range: "0 (disabled) or a positive finite number" })),
    tokenRatio: v("DB_RETRY_BUDGET_TOKEN_RATIO", number({ above: 0, max: 1, range: "a number above 0 and at most 1" }))
  },
  circuitBreaker: {
    failureThreshold: v("DB_CIRCUIT_FAILURE_THRESHOLD", integer({ min: 0, range: "0 (disabled) or a positive integer" })),
    resetTimeoutMs: v("DB_CIRCUIT_RESET_MS", milliseconds()),
    resetJitter: v("DB_CIRCUIT_RESET_JITTER", number({ min: 0, max: 1, range: "a fraction from 0 (exact resets) to 1" }))
  },
  health: {
    failedQueries: v("DB_HEALTH_FAILED_QUERIES", integer({ min: 0, range: "0 (disabled) or a positive integer" })),
    stallMs: v("DB_HEALTH_STALL_MS", milliseconds(0))
  },
  topology: {
    replicaMaxLagMs: v("DB_REPLICA_MAX_LAG_MS", milliseconds(0)),
    nodeCheckIntervalMs: v("DB_NODE_CHECK_INTERVAL_MS", milliseconds())
  }
}

/**
 * A variable whose value is not what its setting accepts.
 *
 * @since 0.2.0
 */
export class SettingError extends Error {
  override readonly name = "SettingError"
  constructor(readonly variable: string, readonly problem: string) {
    super(`${variable} ${problem}`)
  }
}

/**
 * The value of `raw` (trimmed) for `variable`, or why it is not one (`must
 * be a positive integer number of milliseconds; got "0"`): the one wording
 * of a bad setting, for `SettingError` and for core's `ConfigError`.
 *
 * @since 0.2.0
 */
export const check = <A>(variable: Variable<A>, raw: string): { readonly value: A } | { readonly problem: string } => {
  const value = variable.parser.read(raw.trim())
  return value === undefined ? { problem: `must be ${variable.parser.range}; got ${JSON.stringify(raw)}` } : { value }
}

/**
 * The value of `raw` (trimmed) for `variable`; throws `SettingError` when it
 * is not one.
 *
 * @since 0.2.0
 */
export const parse = <A>(variable: Variable<A>, raw: string): A => {
  const checked = check(variable, raw)
  if ("problem" in checked) throw new SettingError(variable.name, checked.problem)
  return checked.value
}

/**
 * Every setting read from `env`, `base` (the documented defaults) for each
 * variable that is not set; throws `SettingError` at the first bad value.
 *
 * @example
 * ```ts
 * import { fromEnv } from "@prisma-resilience/kernel/variables"
 * const settings = fromEnv(process.env)
 * settings.retry.attemptTimeoutMs // 2000 unless DB_ATTEMPT_TIMEOUT_MS says otherwise
 * ```
 *
 * @since 0.2.0
 */
export const fromEnv = (env: Readonly<Record<string, string | undefined>>, base: Settings = defaults): Settings => {
  const read = <G extends keyof Settings>(group: G): Settings[G] => {
    const values: Record<string, unknown> = { ...base[group] }
    for (const [field, variable] of Object.entries(variables[group]) as Array<[string, Variable<unknown>]>) {
      const raw = env[variable.name]
      if (raw !== undefined) values[field] = parse(variable, raw)
    }
    return values as unknown as Settings[G]
  }
  return {
    retry: read("retry"),
    warmup: read("warmup"),
    pool: read("pool"),
    serverTimeouts: read("serverTimeouts"),
    retryBudget: read("retryBudget"),
    circuitBreaker: read("circuitBreaker"),
    health: read("health"),
    topology: read("topology")
  }
}

/**
 * The kernel's table of variables (`@prisma-resilience/kernel/variables`) as
 * Effect `Config`: one variable, or one group of the settings, each checked
 * with the kernel's parser and failing with a `ConfigError` that names the
 * variable, the range and the value given.
 */
import * as Kernel from "@prisma-resilience/kernel/settings"
import * as Variables from "@prisma-resilience/kernel/variables"
import { Config, ConfigError, Either } from "effect"

/**
 * `variable` as a `Config`, `fallback` when unset.
 */
export const variable = <A>(variable: Variables.Variable<A>, fallback: A): Config.Config<A> =>
  Config.string(variable.name).pipe(
    Config.mapOrFail((raw) => {
      const checked = Variables.check(variable, raw)
      return "problem" in checked ? Either.left(ConfigError.InvalidData([], checked.problem)) : Either.right(checked.value)
    }),
    Config.withDefault(fallback)
  )

/**
 * One group of the settings (`retry`, `pool`, …) read from its `DB_*`
 * variables, with the documented defaults.
 */
export const group = <G extends keyof Kernel.Settings>(name: G): Config.Config<Kernel.Settings[G]> => {
  const fallback = Kernel.defaults[name] as unknown as Record<string, unknown>
  const fields = Object.entries(Variables.variables[name]) as Array<[string, Variables.Variable<unknown>]>
  return Config.all(
    Object.fromEntries(fields.map(([field, v]) => [field, variable(v, fallback[field])]))
  ) as unknown as Config.Config<Kernel.Settings[G]>
}

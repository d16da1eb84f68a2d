/**
 * The kernel's table of variables (`@prisma-resilience/kernel/variables`) as
 * Effect `Config`: one variable, or one group of the settings, each checked
 * with the kernel's parser and failing with a `ConfigError` that names the
 * variable, the range and the value given.
 */
import * as Kernel from "@prisma-resilience/kernel/settings"
import * as Variables from "@prisma-resilience/kernel/variables"
import * as Config from "effect/Config"
import { SourceError } from "effect/ConfigProvider"
import * as Effect from "effect/Effect"

/**
 * `variable` as a `Config`, `fallback` when unset.
 */
export const variable = <A>(variable: Variables.Variable<A>, fallback: A): Config.Config<A> =>
  Config.String(variable.name).pipe(
    Config.mapEffect((raw) => {
      const checked = Variables.check(variable, raw)
      // Effect 4 has no ConfigError.InvalidData: a SourceError carries the kernel's wording.
      return "problem" in checked
        ? Effect.fail(new Config.ConfigError(new SourceError({ message: `${variable.name} ${checked.problem}` })))
        : Effect.succeed(checked.value)
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

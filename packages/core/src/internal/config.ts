import { Config } from "effect"

/** A duration setting in whole milliseconds, above zero, with a default. */
export const positiveMs = (name: string, fallback: number): Config.Config<number> =>
  Config.integer(name).pipe(
    Config.validate({ message: "must be a positive integer number of milliseconds", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

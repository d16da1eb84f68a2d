// The settings table without Effect: what `fromEnv` reads, what it rejects
// (naming the variable, the range and the value), and the derived limits.
import { Settings, Variables } from "@prisma-resilience/kernel"
import { describe, expect, it } from "vitest"

describe("settings", () => {
  it("reads every DB_* variable set, and the documented default for the rest", () => {
    const settings = Variables.fromEnv({
      DB_RETRY_DELAYS_MS: " 100, 200 ,300",
      DB_ATTEMPT_TIMEOUT_MS: "1500",
      DB_RETRY_JITTER: "yes",
      DB_POOL_MAX: "3",
      DB_SERVER_TIMEOUTS: "off",
      DB_CIRCUIT_RESET_JITTER: "0",
      DB_RETRY_BUDGET_TOKEN_RATIO: "0.5",
      DB_HEALTH_FAILED_QUERIES: "0",
      DB_REPLICA_MAX_LAG_MS: "0",
      UNRELATED: "x"
    })
    expect(settings.retry).toEqual({ ...Settings.defaults.retry, delaysMs: [100, 200, 300], attemptTimeoutMs: 1500, jitter: true })
    expect(settings.pool).toEqual({ ...Settings.defaults.pool, max: 3 })
    expect(settings.serverTimeouts.enabled).toBe(false)
    expect(settings.circuitBreaker.resetJitter).toBe(0)
    expect(settings.retryBudget.tokenRatio).toBe(0.5)
    expect(settings.health.failedQueries).toBe(0)
    expect(settings.topology.replicaMaxLagMs).toBe(0)
    expect(settings.warmup).toEqual(Settings.defaults.warmup)
    expect(Variables.fromEnv({})).toEqual(Settings.defaults)
    expect(Variables.fromEnv({ DB_RETRY_DELAYS_MS: "none" }).retry.delaysMs).toEqual([])
  })

  it("rejects a bad value with the variable, the range and what was given", () => {
    const cases: Array<[string, string, RegExp]> = [
      ["DB_CIRCUIT_RESET_MS", "0", /^DB_CIRCUIT_RESET_MS must be a positive integer number of milliseconds; got "0"$/],
      ["DB_POOL_MAX", "ten", /^DB_POOL_MAX must be a positive integer; got "ten"$/],
      ["DB_RETRY_DELAYS_MS", "500,,1000", /^DB_RETRY_DELAYS_MS must be comma-separated/],
      ["DB_RETRY_BUDGET_TOKEN_RATIO", "0", /above 0 and at most 1; got "0"$/],
      ["DB_CIRCUIT_RESET_JITTER", "1.5", /a fraction from 0/],
      ["DB_RETRY_JITTER", "maybe", /true or false; got "maybe"$/],
      ["DB_ATTEMPT_TIMEOUT_MS", "", /got ""$/],
      ["DB_ATTEMPT_TIMEOUT_MS", "2000.5", /positive integer/]
    ]
    for (const [name, value, message] of cases) {
      let thrown: unknown
      try {
        Variables.fromEnv({ [name]: value })
      } catch (error) {
        thrown = error
      }
      expect(thrown, `${name}=${value}`).toBeInstanceOf(Variables.SettingError)
      expect((thrown as Variables.SettingError).variable).toBe(name)
      expect((thrown as Error).message).toMatch(message)
    }
  })

  it("names every setting of every group once", () => {
    const names = Object.values(Variables.variables).flatMap((group) =>
      Object.values(group as Record<string, Variables.Variable<unknown>>).map((v) => v.name)
    )
    expect(new Set(names).size).toBe(names.length)
    for (const [group, fields] of Object.entries(Variables.variables)) {
      const defaults = Settings.defaults[group as keyof Settings.Settings] as unknown as Record<string, unknown>
      for (const field of Object.keys(fields)) expect(defaults[field], `${group}.${field}`).toBeDefined()
    }
    expect(names).toHaveLength(25)
  })

  it("derives the server's limits and Prisma's transaction limits inside the attempt timeout", () => {
    const retry = { ...Settings.defaults.retry, attemptTimeoutMs: 2000 }
    expect(Settings.serverLimits(retry, { enabled: true, marginMs: 100 })).toEqual({
      statement_timeout: 1900,
      lock_timeout: 1900,
      idle_in_transaction_session_timeout: 2000
    })
    expect(Settings.serverLimits(retry, { enabled: false, marginMs: 100 })).toEqual({})
    expect(Settings.prismaLimits({ enabled: true, marginMs: 100 }, Settings.defaults.pool, { maxWait: 5000 }, 1000))
      .toEqual({ isolationLevel: undefined, maxWait: 900, timeout: 900 })
    const overlaid = Settings.overlay(Settings.defaults, { pool: { max: 2 }, retry: { delaysMs: [] } })
    expect(overlaid.pool).toEqual({ ...Settings.defaults.pool, max: 2 })
    expect(overlaid.retry.delaysMs).toEqual([])
    expect(overlaid.warmup).toEqual(Settings.defaults.warmup)
  })
})

describe("the configuration reference", () => {
  // Each core package (Effect 4 and Effect 3) documents the same table.
  it.each(["core", "core-effect3"])("%s's README lists every DB_* variable once, with the kernel's default", async (pkg) => {
    const fs = await import("node:fs/promises")
    const readme = await fs.readFile(new URL(`../../${pkg}/README.md`, import.meta.url), "utf8")
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Metrics"))
    const documented = new Map<string, string>()
    for (const row of section.split("\n").filter((line) => line.startsWith("| `DB_"))) {
      const [names, defaults] = row.split("|").slice(1, 3).map((cell) => cell.trim())
      const values = defaults!.split(" / ").map((value) => value.replaceAll("`", "").trim())
      names!.match(/DB_[A-Z_]+/g)!.forEach((name, i) => documented.set(name, values[i]!))
    }
    const actual = new Map<string, string>()
    for (const [group, fields] of Object.entries(Variables.variables)) {
      const defaults = Settings.defaults[group as keyof Settings.Settings] as unknown as Record<string, unknown>
      for (const [field, variable] of Object.entries(fields as Record<string, Variables.Variable<unknown>>)) {
        const value = defaults[field]
        actual.set(variable.name, Array.isArray(value) ? value.join(",") : String(value))
      }
    }
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(actual))
  })
})

// The Prometheus alert rules in deploy/prometheus are only as good as their
// promtool unit tests, so those run here with the rest of the suite. promtool
// comes from Debian's `prometheus` package (scripts/install-debian-tools.sh).
import { spawnSync } from "node:child_process"
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const dir = join(root, "deploy", "prometheus")
const rulesFile = join(dir, "alerts.yml")
const testsFile = join(dir, "alerts.test.yml")

const expectedAlerts = [
  "DbHealthCheckFailureRatioHigh",
  "DbQueryRetryShareHigh",
  "DbWarmupSlow",
  "DbPrismaEmptyResponse",
  "DbNotReady",
  "DbCircuitBreakerOpen",
  "DbRetryBudgetExhausted",
  "DbNoWritableNode",
  "DbNodeUnreachable",
  "DbReplicaLagHigh"
]

// A hung promtool must fail the test, not the whole run.
const promtool = (...args: Array<string>) => {
  const result = spawnSync("promtool", args, { cwd: root, encoding: "utf8", timeout: 30_000 })
  return {
    status: result.status,
    output: `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}`
  }
}

const installed = promtool("--version").status === 0
// On a developer's machine a missing tool skips its tests; in CI, where
// .ci/run installs it, a missing tool is a failure, so no check is lost silently.
const requireTools = process.env.CI === "true"
if (!installed) {
  // Skipped tests are easy to miss in a green run: say why, loudly.
  console.warn(
    "promtool not installed: the alert rule tests in test/alerts.test.ts are SKIPPED. " +
      "Run `scripts/install-debian-tools.sh` (or `apt-get install -y --no-install-recommends prometheus`); CI does."
  )
}

const scratch: Array<string> = []
afterAll(() => {
  for (const path of scratch) rmSync(path, { recursive: true, force: true })
})

/** Copies the rules and their tests to a temporary directory with `edit` applied to the rules. */
const mutatedCopy = (edit: (rules: string) => string) => {
  const copy = mkdtempSync(join(tmpdir(), "alerts-"))
  scratch.push(copy)
  const original = readFileSync(rulesFile, "utf8")
  const edited = edit(original)
  // An edit that no longer matches would make the "must fail" tests pass for
  // the wrong reason.
  expect(edited).not.toBe(original)
  writeFileSync(join(copy, "alerts.yml"), edited)
  copyFileSync(testsFile, join(copy, "alerts.test.yml"))
  return copy
}

const replaceOnce = (text: string, from: string, to: string) => {
  expect(text.split(from).length - 1, `"${from}" once in alerts.yml`).toBe(1)
  return text.replace(from, to)
}

describe("deploy/prometheus alert rules", () => {
  it("defines the expected alerts, each with a test case where it fires", () => {
    const rules = readFileSync(rulesFile, "utf8")
    expect([...rules.matchAll(/^\s*- alert: (\S+)$/gm)].map((match) => match[1])).toEqual(expectedAlerts)
    const tests = readFileSync(testsFile, "utf8")
    for (const name of expectedAlerts) {
      expect(tests, `a firing case for ${name}`).toMatch(
        new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels:`)
      )
    }
  })

  it.runIf(!installed && requireTools)("can be checked: promtool is installed (CI requires it)", () => {
    expect.fail("promtool is not installed; scripts/install-debian-tools.sh installs it")
  })

  it.skipIf(!installed)("pass `promtool check rules`", () => {
    const { output, status } = promtool("check", "rules", rulesFile)
    expect(status, output).toBe(0)
    expect(output).toContain(`SUCCESS: ${expectedAlerts.length} rules found`)
  })

  it.skipIf(!installed)("pass their unit tests (`promtool test rules`)", () => {
    const { output, status } = promtool("test", "rules", testsFile)
    expect(status, output).toBe(0)
    expect(output).toMatch(/^\s+SUCCESS$/m)
    expect(output).not.toContain("FAILED")
  })

  it.skipIf(!installed)("unit tests catch a changed threshold or condition", () => {
    const copy = mutatedCopy((rules) =>
      replaceOnce(
        replaceOnce(rules, "db_circuit_state > 0", "db_circuit_state == 1"),
        ") > 0.05",
        ") > 0.08"
      )
    )
    const { output, status } = promtool("test", "rules", join(copy, "alerts.test.yml"))
    expect(status, output).toBe(1)
    expect(output).toContain("FAILED")
    expect(output).toContain("alertname: DbCircuitBreakerOpen")
    expect(output).toContain("alertname: DbQueryRetryShareHigh")
  })

  it.skipIf(!installed)("unit tests catch a replica lag alert that ignores an unknown (+Inf) lag or a changed threshold", () => {
    for (const [edit, instance] of [
      ["(db_node_replay_lag_seconds > 1) < +Inf", "b:3000"],
      ["db_node_replay_lag_seconds > 300", "a:3000"]
    ] as const) {
      const copy = mutatedCopy((rules) => replaceOnce(rules, "expr: db_node_replay_lag_seconds > 1", `expr: ${edit}`))
      const { output, status } = promtool("test", "rules", join(copy, "alerts.test.yml"))
      expect(status, output).toBe(1)
      expect(output).toContain("alertname: DbReplicaLagHigh")
      expect(output).toContain(`instance="${instance}"`)
    }
  })

  it.skipIf(!installed)("check rules rejects an invalid expression", () => {
    const copy = mutatedCopy((rules) =>
      replaceOnce(rules, "expr: db_warmup_duration_seconds > 5", "expr: db_warmup_duration_seconds >")
    )
    const { output, status } = promtool("check", "rules", join(copy, "alerts.yml"))
    expect(status, output).toBe(1)
    expect(output).toContain(`"DbWarmupSlow": could not parse expression`)
  })
})

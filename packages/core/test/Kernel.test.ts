// The kernel is what a binding to another Effect major reuses: it must not
// import Effect (or anything outside itself), directly or through a sibling.
import * as Kernel from "@prisma-resilience/core/kernel"
import { describe, expect, it } from "@effect/vitest"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const kernelDir = fileURLToPath(new URL("../src/kernel", import.meta.url))
const specifiers = (source: string) =>
  [...source.matchAll(/(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)]
    .map((match) => match[1] ?? match[2]!)

describe("kernel", () => {
  it("imports only its own modules", () => {
    const files = fs.readdirSync(kernelDir).filter((file) => file.endsWith(".ts"))
    expect(files.length).toBeGreaterThan(5)
    for (const file of files) {
      for (const specifier of specifiers(fs.readFileSync(path.join(kernelDir, file), "utf8"))) {
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^\.\/[\w-]+\.js$/)
      }
    }
  })

  it("classifies, decides retry safety and runs the breaker without Effect", () => {
    expect(Kernel.diagnose(Object.assign(new Error("deadlock detected"), { code: "40P01" }))).toMatchObject({
      tag: "TransactionError",
      safety: "transaction",
      code: "40P01"
    })
    expect(Kernel.kindOfMethod("purchaseOrder.findUnique")).toBe("read")
    expect(Kernel.kindOfMethod("purchaseOrder.upsert")).toBe("write")
    expect(Kernel.isSafeToRetry("ambiguous", "write")).toBe(false)
    const transitions: Array<string> = []
    const breaker = Kernel.CircuitBreaker.make({ failureThreshold: 1, resetTimeoutMs: 100 }, (t) => transitions.push(t.to))
    breaker.onFailure(0, breaker.acquire(0), "ConnectionError")
    expect(breaker.acquire(50)._tag).toBe("Rejected")
    expect(breaker.acquire(100)).toEqual({ _tag: "Allowed", probe: true })
    expect(transitions).toEqual(["open", "half-open"])
    expect(Kernel.RetryPolicy.worstCase(Kernel.RetryPolicy.defaults).totalMs).toBe(9000)
  })
})

// The kernel is what a binding to another Effect major reuses: it must not
// import Effect (or anything outside itself), directly or through a sibling.
import * as Kernel from "@prisma-resilience/kernel"
import { describe, expect, it } from "@effect/vitest"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const kernelDir = fileURLToPath(new URL("../src", import.meta.url))
// Comments are left out: an `@example` may show an import of the package.
const specifiers = (source: string) =>
  [...source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "").matchAll(/(?:import|export)\s[^'"]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)]
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
    const manifest = JSON.parse(fs.readFileSync(path.join(kernelDir, "..", "package.json"), "utf8"))
    expect(manifest.dependencies ?? {}, "the kernel depends on nothing").toEqual({})
    expect(manifest.peerDependencies ?? {}).toEqual({})
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

  it("query-path health: consecutive failures and stalls degrade it, progress restores it", () => {
    const q = Kernel.QueryHealth.make({ failedQueries: 3, stallMs: 1000 })
    expect(q.degraded(0)).toBeUndefined()
    for (let i = 0; i < 2; i++) {
      q.started(i)
      q.settled(i, true, "TimeoutError")
    }
    expect(q.degraded(10)).toBeUndefined()
    q.started(10)
    q.settled(10, true, "TimeoutError")
    expect(q.degraded(11)?.reason).toBe("failing")
    q.started(20)
    q.settled(20, false)
    expect(q.degraded(21)).toBeUndefined()
    // Idle for a minute, then one attempt: not stalled until it has run for stallMs.
    q.started(60_000)
    expect(q.degraded(60_999)).toBeUndefined()
    expect(q.degraded(61_000)?.reason).toBe("stalled")
    q.settled(61_200, false)
    expect(q.degraded(70_000)).toBeUndefined()
    const off = Kernel.QueryHealth.make({ failedQueries: 0, stallMs: 0 })
    off.started(0)
    for (let i = 0; i < 10; i++) off.settled(i, true)
    off.started(10)
    expect(off.degraded(100_000)).toBeUndefined()
  })

  it("reads libpq multi-host connection strings and gives one single-host string per host", () => {
    const multi = Kernel.parseMultiHost(
      "postgresql://app:s%40cret@127.0.0.1:5433,127.0.0.1:5434,[::1]/orders?target_session_attrs=read-write&sslmode=disable"
    )
    expect(multi.hosts).toEqual([
      { host: "127.0.0.1", port: 5433 },
      { host: "127.0.0.1", port: 5434 },
      { host: "::1", port: 5432 }
    ])
    expect(multi.targetSessionAttrs).toBe("read-write")
    expect(multi.forHost(1)).toBe("postgresql://app:s%40cret@127.0.0.1:5434/orders?sslmode=disable")
    expect(multi.forHost(2)).toBe("postgresql://app:s%40cret@[::1]:5432/orders?sslmode=disable")
    const single = Kernel.parseMultiHost("postgres://localhost/app")
    expect(single.hosts).toEqual([{ host: "localhost", port: 5432 }])
    expect(single.targetSessionAttrs).toBe("any")
    expect(single.forHost(0)).toBe("postgres://localhost:5432/app")
    for (const bad of ["mysql://u:p@127.0.0.1/db", "postgresql://u:secret@127.0.0.1:99999/db", "postgresql://u:secret@127.0.0.1/db?target_session_attrs=writer"]) {
      expect(() => Kernel.parseMultiHost(bad)).toThrow(Kernel.ConnectionStringError)
      try {
        Kernel.parseMultiHost(bad)
      } catch (error) {
        expect((error as Error).message).not.toContain("secret")
      }
    }
  })

  it("the kind of a call: raw SQL is a read only when it is a plain SELECT", () => {
    const table: Array<[string, ReadonlyArray<unknown>, "read" | "write" | undefined]> = [
      ["purchaseOrder.findMany", [], "read"],
      ["purchaseOrder.count", [], "read"],
      ["purchaseOrder.create", [], "write"],
      ["purchaseOrder.upsert", [], "write"],
      ["$queryRaw", [Object.assign(["SELECT * FROM t WHERE id = ", ""], { raw: [] })], "read"],
      ["$queryRaw", [["  -- note\n/* c */ (SELECT 1)"]], "read"],
      ["$queryRaw", [["WITH x AS (SELECT 1) SELECT * FROM x"]], "read"],
      ["$queryRaw", [["SELECT * FROM t FOR UPDATE"]], "read"],
      ["$queryRaw", [["SELECT 1;"]], "read"],
      ["$queryRaw", [["INSERT INTO t (a) VALUES (", ") RETURNING id"]], "write"],
      ["$queryRaw", [["WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x"]], "write"],
      ["$queryRaw", [["SELECT * INTO copy FROM t"]], "write"],
      ["$queryRaw", [["SELECT nextval('s')"]], "write"],
      ["$queryRaw", [["SELECT 1; DELETE FROM t"]], "write"],
      ["$queryRaw", [{ strings: ["UPDATE t SET a = ", ""], values: [1] }], "write"],
      ["$queryRaw", [{ strings: ["SELECT ", ""], values: [1] }], "read"],
      ["$queryRawUnsafe", ["select 1"], "read"],
      ["$queryRawUnsafe", ["update t set a = 1 returning a"], "write"],
      ["$queryRawUnsafe", [42], "write"],
      ["$executeRaw", [["SELECT 1"]], "write"],
      ["$executeRawUnsafe", ["SELECT 1"], "write"],
      ["$transaction", [[]], "write"],
      ["$on", ["query", () => {}], undefined],
      ["$connect", [], undefined]
    ]
    for (const [method, args, kind] of table) {
      expect([method, JSON.stringify(args), Kernel.kindOfCall(method, args)]).toEqual([method, JSON.stringify(args), kind])
    }
  })

  it("query-path health: a passing probe ends a spell it can see, not one it cannot; transient spells expire when quiet", () => {
    const q = Kernel.QueryHealth.make({ failedQueries: 3, stallMs: 1000 })
    const fail = (now: number, failure: Kernel.QueryHealth.FailureClass) => {
      q.started(now)
      q.settled(now, true, "x", failure)
    }
    expect(q.probePassed(0)).toBe("none")
    for (let i = 0; i < 3; i++) fail(i, "probe")
    expect(q.degraded(10)?.reason).toBe("failing")
    expect(q.probePassed(10)).toBe("cleared")
    expect(q.degraded(11)).toBeUndefined()
    // A timeout among connection failures: SELECT 1 cannot tell.
    for (let i = 0; i < 3; i++) fail(20 + i, i === 1 ? "transient" : "probe")
    expect(q.probePassed(30)).toBe("hidden")
    expect(q.degraded(30)?.reason).toBe("failing")
    expect(q.expire(1021, 1000)).toBe(false)
    expect(q.expire(1022, 1000)).toBe(true)
    expect(q.degraded(1022)).toBeUndefined()
    // A broken table never expires by itself.
    for (let i = 0; i < 3; i++) fail(2000 + i, "permanent")
    expect(q.probePassed(2010)).toBe("hidden")
    expect(q.expire(100_000, 1000)).toBe(false)
    expect(q.degraded(100_000)?.reason).toBe("failing")
    q.reset(100_001)
    expect(q.degraded(100_001)).toBeUndefined()
    expect(Kernel.QueryHealth.failureClass("ConnectionError", "P1001")).toBe("probe")
    expect(Kernel.QueryHealth.failureClass("ConnectionError", "P2024")).toBe("transient")
    expect(Kernel.QueryHealth.failureClass("TimeoutError", "57014")).toBe("transient")
    expect(Kernel.QueryHealth.failureClass("QueryError", "42P01")).toBe("permanent")
  })

  it("the breaker's reset is jittered per opening, within resetJitter", () => {
    const randoms = [0, 0.5, 1]
    const breaker = Kernel.CircuitBreaker.make(
      { failureThreshold: 1, resetTimeoutMs: 1000, resetJitter: 0.2 },
      () => {},
      () => randoms.shift()!
    )
    const resets: Array<number> = []
    let now = 0
    for (let opening = 0; opening < 3; opening++) {
      breaker.onFailure(now, breaker.acquire(now), "ConnectionError")
      const openedAt = now
      while (breaker.acquire(now)._tag === "Rejected" && now < 10_000) now += 1
      resets.push(now - openedAt)
      breaker.reset("test")
    }
    expect(resets).toEqual([1000, 1100, 1200])
  })
})

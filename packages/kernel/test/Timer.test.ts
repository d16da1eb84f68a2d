import { makeTimer } from "@prisma-resilience/kernel"
import { describe, expect, it } from "@effect/vitest"

// The timer reads only the clock it is given: a fake `now` decides when an
// entry expires, whatever real time passes.
describe("makeTimer", () => {
  it("expires an entry only once the injected clock passes its deadline", () => {
    let now = 1_000
    const timer = makeTimer(() => now, 60_000)
    const expired: Array<string> = []
    timer.track(100, () => expired.push("a"))
    timer.track(300, () => expired.push("b"))
    expect(timer.now()).toBe(1_000)
    timer.sweep()
    expect(expired).toEqual([])
    now = 1_099
    timer.sweep()
    expect(expired).toEqual([])
    now = 1_100
    timer.sweep()
    expect(expired).toEqual(["a"])
    expect(timer.size()).toBe(1)
    now = 5_000
    timer.sweep()
    timer.sweep()
    expect(expired).toEqual(["a", "b"])
    expect(timer.size()).toBe(0)
  })

  it("never expires an untracked entry", () => {
    let now = 0
    const timer = makeTimer(() => now, 60_000)
    let expired = 0
    const entry = timer.track(10, () => expired++)
    timer.untrack(entry)
    now = 1_000
    timer.sweep()
    expect(expired).toBe(0)
    expect(timer.size()).toBe(0)
  })

  it("sweeps on its own every sweepMs of real time", async () => {
    let now = 0
    const timer = makeTimer(() => now, 5)
    const expired = new Promise<number>((resolve) => timer.track(50, () => resolve(now)))
    now = 50
    expect(await expired).toBe(50)
  })
})

// The topology kernel as data: which node libpq's target_session_attrs
// accepts, which replica an opted-in read gets, how replica lists split.
import { describe, expect, it } from "@effect/vitest"
import { Topology } from "@prisma-resilience/core/kernel"

const primary: Topology.Probe = { inRecovery: false, readOnly: false, lagMs: 0 }
const standby: Topology.Probe = { inRecovery: true, readOnly: true, lagMs: 10 }
const readOnlyPrimary: Topology.Probe = { inRecovery: false, readOnly: true, lagMs: 0 }

const state = (role: Topology.Role, lagMs: number | undefined, checkedAt = 1000): Topology.NodeState => ({
  name: "n",
  role,
  lagMs,
  checkedAt,
  error: undefined
})

describe("kernel/topology", () => {
  it("chooses the first node target_session_attrs accepts, as libpq does", () => {
    expect(Topology.choose("read-write", [standby, readOnlyPrimary, primary])).toBe(2)
    expect(Topology.choose("primary", [standby, readOnlyPrimary, primary])).toBe(1)
    expect(Topology.choose("read-write", [undefined, standby])).toBeUndefined()
    expect(Topology.choose("any", [undefined, standby, primary])).toBe(1)
    expect(Topology.choose("standby", [primary, standby])).toBe(1)
    expect(Topology.choose("read-only", [primary, readOnlyPrimary])).toBe(1)
    expect(Topology.choose("prefer-standby", [primary, standby])).toBe(1)
    expect(Topology.choose("prefer-standby", [undefined, primary])).toBe(1)
  })

  it("treats a refused write and a server going away as the wrong node, and nothing else", () => {
    expect(["25006", "57P01", "57P02", "57P03"].map(Topology.isWrongNode)).toEqual([true, true, true, true])
    expect(["40001", "23505", "57014", undefined].map(Topology.isWrongNode)).toEqual([false, false, false, false])
  })

  it("plans only strings with a host list or target_session_attrs; a plain one is left as it is", () => {
    expect(Topology.plan("postgresql://u:p@127.0.0.1:5432/db")).toBeUndefined()
    const plan = Topology.plan("postgresql://u:p@127.0.0.1:5433,[::1]:5434/db?sslmode=disable&target_session_attrs=read-write")!
    expect(plan.hosts).toEqual(["127.0.0.1:5433", "[::1]:5434"])
    expect(plan.targetSessionAttrs).toBe("read-write")
    expect(plan.url(1)).toBe("postgresql://u:p@[::1]:5434/db?sslmode=disable")
    expect(Topology.plan("postgresql://u:p@127.0.0.1/db?target_session_attrs=primary")!.hosts).toEqual(["127.0.0.1:5432"])
  })

  it("splits replica lists on whitespace and on commas before a scheme, not inside a host list", () => {
    expect(Topology.splitUrls(" postgresql://a@h1:1/db, postgres://b@h2:2/db\npostgresql://c@h3:3/db ")).toEqual([
      "postgresql://a@h1:1/db",
      "postgres://b@h2:2/db",
      "postgresql://c@h3:3/db"
    ])
    expect(Topology.splitUrls("postgresql://a@h1:1,h2:2/db")).toEqual(["postgresql://a@h1:1,h2:2/db"])
    expect(() => Topology.nameOf("postgresql://a@h1:1,h2:2/db")).toThrow(/names 2 hosts/)
  })

  it("picks replicas round robin among those up, recent, admitted and within the lag limit", () => {
    const config = { maxLagMs: 100, staleMs: 500 }
    const replicas: Array<Topology.Candidate> = [
      { state: state("replica", 5), admits: true },
      { state: state("replica", 500), admits: true },
      { state: state("replica", 0), admits: true },
      { state: state("replica", 0), admits: false },
      { state: state("primary", 0), admits: true },
      { state: state("replica", 0, 100), admits: true }
    ]
    expect(Topology.pickReplica(replicas, 1200, config, 0)).toEqual({ index: 0 })
    expect(Topology.pickReplica(replicas, 1200, config, 1)).toEqual({ index: 2 })
    expect(Topology.pickReplica(replicas, 1200, config, 3)).toEqual({ index: 0 })
    expect(Topology.pickReplica([replicas[1]!], 1200, config, 0)).toEqual({ reason: "lag" })
    expect(Topology.pickReplica([replicas[3]!, replicas[4]!, replicas[5]!], 1200, config, 0)).toEqual({
      reason: "unavailable"
    })
    expect(Topology.pickReplica([{ state: state("replica", undefined), admits: true }], 1200, config, 0)).toEqual({
      reason: "lag"
    })
    expect(Topology.pickReplica([], 1200, config, 0)).toEqual({ reason: "no_replica" })
  })
})

// The topology kernel as data: which node libpq's target_session_attrs
// accepts, which replica an opted-in read gets, how replica lists split, and
// how far behind the writer a replica is.
import { describe, expect, it } from "@effect/vitest"
import { Topology } from "@prisma-resilience/kernel"

const primary: Topology.Probe = { inRecovery: false, readOnly: false, walLsn: 100n, replayLsn: undefined }
const standby: Topology.Probe = { inRecovery: true, readOnly: true, walLsn: undefined, replayLsn: 90n }
const readOnlyPrimary: Topology.Probe = { inRecovery: false, readOnly: true, walLsn: 100n, replayLsn: undefined }

const candidate = (role: Topology.Role, lagMs: number | undefined, checkedAt = 1000, admits = true): Topology.Candidate => ({
  state: { name: "n", role, replayLsn: undefined, checkedAt, error: undefined },
  admits,
  lagMs
})

/** a history of the writer "w" built from [at, lsn] pairs, in order */
const historyOf = (...samples: ReadonlyArray<readonly [number, bigint]>) =>
  samples.reduce<Topology.WriterHistory | undefined>(
    (history, [at, lsn]) => Topology.recordWriter(history, "w", { at, lsn }),
    undefined
  )

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
      candidate("replica", 5),
      candidate("replica", 500),
      candidate("replica", 0),
      candidate("replica", 0, 1000, false),
      candidate("primary", 0),
      candidate("replica", 0, 100)
    ]
    expect(Topology.pickReplica(replicas, 1200, config, 0)).toEqual({ index: 0 })
    expect(Topology.pickReplica(replicas, 1200, config, 1)).toEqual({ index: 2 })
    expect(Topology.pickReplica(replicas, 1200, config, 3)).toEqual({ index: 0 })
    expect(Topology.pickReplica([replicas[1]!], 1200, config, 0)).toEqual({ reason: "lag" })
    expect(Topology.pickReplica([replicas[3]!, replicas[4]!, replicas[5]!], 1200, config, 0)).toEqual({
      reason: "unavailable"
    })
    // a lag that cannot be told is too far behind
    expect(Topology.pickReplica([candidate("replica", undefined)], 1200, config, 0)).toEqual({ reason: "lag" })
    // exactly at the limit is within it
    expect(Topology.pickReplica([candidate("replica", 100)], 1200, config, 0)).toEqual({ index: 0 })
    expect(Topology.pickReplica([candidate("replica", 101)], 1200, config, 0)).toEqual({ reason: "lag" })
    expect(Topology.pickReplica([], 1200, config, 0)).toEqual({ reason: "no_replica" })
  })

  it.each([
    ["0/0", 0n],
    ["0/16B3748", 0x16b3748n],
    ["16/B374D848", (0x16n << 32n) + 0xb374d848n],
    ["FFFFFFFF/FFFFFFFF", (1n << 64n) - 1n],
    ["16/b374d848", (0x16n << 32n) + 0xb374d848n],
    ["", undefined],
    ["16B374D848", undefined],
    ["16/B374D848/0", undefined],
    ["G/0", undefined],
    ["123456789/0", undefined],
    [null, undefined],
    [undefined, undefined]
  ] as const)("reads the pg_lsn %j as %s", (text, lsn) => {
    expect(Topology.parseLsn(text)).toBe(lsn)
  })

  // 8 kB pages, 16 MB segments: an insert position just past a page header
  // (24 bytes, 40 on a segment's first page) is the boundary, where a replica
  // that replayed the record ending there says it is.
  const segment = 16n * 1024n * 1024n
  it.each([
    ["past the long header of a segment's first page", segment * 3n + 40n, segment * 3n],
    ["past the long header of the very first segment", 40n, 0n],
    ["past a short header", segment + 8192n * 5n + 24n, segment + 8192n * 5n],
    ["past the short header of a segment's second page", 8192n + 24n, 8192n],
    ["inside a page", segment + 8192n * 5n + 200n, segment + 8192n * 5n + 200n],
    ["24 bytes into a segment's first page, inside its long header", segment + 24n, segment + 24n],
    ["40 bytes into a page that is not a segment's first", 8192n * 2n + 40n, 8192n * 2n + 40n],
    ["on a boundary", 8192n * 7n, 8192n * 7n]
  ] as const)("takes an insert position %s as the end of the last record", (_, insert, end) => {
    expect(Topology.walEnd(insert, 8192, Number(segment))).toBe(end)
  })

  it("keeps one writer's samples increasing, moves an unchanged position's time, and starts over on a new writer or a position that went back", () => {
    const cases: ReadonlyArray<{
      readonly name: string
      readonly history: Topology.WriterHistory | undefined
      readonly node: string
      readonly sample: Topology.WriterSample
      readonly expected: ReadonlyArray<readonly [number, bigint]>
      readonly limit?: number
    }> = [
      { name: "the first sample", history: undefined, node: "w", sample: { at: 10, lsn: 5n }, expected: [[10, 5n]] },
      { name: "a newer position", history: historyOf([10, 5n]), node: "w", sample: { at: 20, lsn: 7n }, expected: [[10, 5n], [20, 7n]] },
      { name: "the same position later", history: historyOf([10, 5n], [20, 7n]), node: "w", sample: { at: 30, lsn: 7n }, expected: [[10, 5n], [30, 7n]] },
      { name: "an older sample arriving late", history: historyOf([10, 5n], [20, 7n]), node: "w", sample: { at: 15, lsn: 6n }, expected: [[10, 5n], [20, 7n]] },
      { name: "another writer", history: historyOf([10, 5n], [20, 7n]), node: "v", sample: { at: 30, lsn: 9n }, expected: [[30, 9n]] },
      { name: "a position that went back", history: historyOf([10, 5n], [20, 7n]), node: "w", sample: { at: 30, lsn: 6n }, expected: [[30, 6n]] },
      { name: "past the limit", history: historyOf([10, 5n], [20, 7n]), node: "w", sample: { at: 30, lsn: 9n }, limit: 2, expected: [[20, 7n], [30, 9n]] }
    ]
    for (const { expected, history, limit, name, node, sample } of cases) {
      const next = Topology.recordWriter(history, node, sample, limit)
      expect(next.node, name).toBe(node)
      expect(next.samples.map((s) => [s.at, s.lsn]), name).toEqual(expected)
    }
  })

  it("measures a replica's lag as the time since the newest writer position it has replayed", () => {
    const history = historyOf([1000, 100n], [1250, 200n], [1500, 300n])
    const staleMs = 1000
    const cases: ReadonlyArray<readonly [string, bigint | undefined, number, number | undefined]> = [
      ["replayed the newest position", 300n, 1600, 100],
      ["replayed past the newest position", 350n, 1600, 100],
      ["between two positions: the older one counts", 250n, 1600, 350],
      ["exactly an older position", 200n, 1600, 350],
      ["the oldest position", 100n, 1600, 600],
      ["behind every position kept: cannot tell", 99n, 1600, undefined],
      ["no replay position: cannot tell", undefined, 1600, undefined],
      // a replica that stopped replaying falls behind as time passes, with no new check
      ["the newest position, 900 ms on", 300n, 2400, 900],
      // the writer has not been sampled for longer than staleMs
      ["no recent writer sample: cannot tell", 300n, 2501, undefined],
      ["a clock that went back reads as no lag", 300n, 1400, 0]
    ]
    for (const [name, replay, now, lag] of cases) expect(Topology.lagOf(history, replay, now, staleMs), name).toBe(lag)
    expect(Topology.lagOf(undefined, 300n, 1600, staleMs), "no writer history").toBeUndefined()
    expect(Topology.replayedAt(history!, 250n)).toBe(1250)
  })

  it("keeps a replica cut off from its writer within the limit only until the limit has passed since it was last caught up", () => {
    // every 250 ms the writer is sampled; it writes until 2000 and the replica's replay stops at 1000
    const maxLagMs = 1000
    let history: Topology.WriterHistory | undefined
    const verdicts: Array<[number, Topology.LagState]> = []
    for (let at = 0; at <= 4000; at += 250) {
      history = Topology.recordWriter(history, "w", { at, lsn: BigInt(Math.min(at, 2000)) })
      const replay = BigInt(Math.min(at, 1000))
      verdicts.push([at + 100, Topology.lagState(Topology.lagOf(history, replay, at + 100, 2000), maxLagMs)])
    }
    expect(verdicts.filter(([, state]) => state === "within").map(([at]) => at)).toEqual([100, 350, 600, 850, 1100, 1350, 1600, 1850])
    // reads at 1100..1850 use a replica whose data stops at 1000: within 1000 ms, as promised
    expect(verdicts.filter(([, state]) => state === "over").map(([at]) => at)).toEqual([2100, 2350, 2600, 2850, 3100, 3350, 3600, 3850, 4100])
  })

  it.each([
    ["no replicas: the configured interval", { nodeCheckIntervalMs: 1000, replicaMaxLagMs: 1000 }, 0, 1000],
    ["replicas: four checks per lag limit", { nodeCheckIntervalMs: 1000, replicaMaxLagMs: 1000 }, 2, 250],
    ["replicas, a shorter interval configured", { nodeCheckIntervalMs: 100, replicaMaxLagMs: 1000 }, 1, 100],
    ["replicas, a tiny lag limit: no faster than 50 ms", { nodeCheckIntervalMs: 1000, replicaMaxLagMs: 0 }, 1, 50]
  ] as const)("checks the nodes at an interval: %s", (_, config, replicas, interval) => {
    expect(Topology.checkIntervalMs(config, replicas)).toBe(interval)
  })

  it("sameServer: two nodes that answered as one server, by index", () => {
    const probe = (server: string | undefined) => ({ inRecovery: false, readOnly: false, walLsn: undefined, replayLsn: undefined, server })
    expect(Topology.sameServer([probe("127.0.0.1:5433@t1"), probe("127.0.0.1:5434@t2")])).toBeUndefined()
    expect(Topology.sameServer([probe("127.0.0.1:5433@t1"), undefined, probe("127.0.0.1:5433@t1")])).toEqual([0, 2])
    expect(Topology.sameServer([probe(undefined), probe(undefined)])).toBeUndefined()
  })
})

// What outside teams install is the packed tarball, not this repository's
// sources: the incident behind this project was a stale export that only
// production saw. So the kernel and core are packed with npm, installed from
// the tarballs into examples/basic-effect3 copied outside the repository (no
// workspace node_modules, no source alias can stand in for a missing file),
// type-checked against the shipped declarations and run against a real
// PostgreSQL; the kernel is also installed alone and run under plain node.
// The Promise apps (examples/fastify, examples/serverless) are
// test/examples.test.ts; the helpers of both are test/support/packed.ts.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import fsp from "node:fs/promises"
import { createRequire } from "node:module"
import os from "node:os"
import path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { caller, childEnv, copyFilter, createKit, generateEnv, repo } from "./support/packed.js"

const packages = {
  kernel: path.join(repo, "packages", "kernel"),
  core: path.join(repo, "packages", "core"),
  coreEffect3: path.join(repo, "packages", "core-effect3")
}
const example = path.join(repo, "examples", "basic-effect3")

let work: string
let app: string
const tarballs: Partial<Record<keyof typeof packages, string>> = {}
let cluster: Cluster | undefined

const kit = createKit("artifact")
const { run, timed, jsonLine } = kit

const npm = (args: ReadonlyArray<string>, timeoutMs: number) => run("npm", args, { cwd: app, timeoutMs })
const npx = (args: ReadonlyArray<string>, timeoutMs: number, env?: NodeJS.ProcessEnv) =>
  run("npx", ["--no", "--", ...args], { cwd: app, timeoutMs, ...(env && { env }) })
const node = (script: string) =>
  run(process.execPath, [script], { cwd: app, timeoutMs: 30_000, env: { ...childEnv, DATABASE_URL: cluster!.url } })

interface LsNode {
  readonly version?: string
  readonly dependencies?: Record<string, LsNode>
}

// The prisma CLI pins an effect of its own (under @prisma/config), so the app
// has two; what must hold is that core brings none and uses the app's.
const effectOfCore = async () => {
  const tree: LsNode = JSON.parse((await npm(["ls", "effect", "--all", "--json"], 30_000)).stdout)
  const versions = new Set<string>()
  const walk = (node: LsNode | undefined) => {
    for (const [name, dep] of Object.entries(node?.dependencies ?? {})) {
      if (name === "effect" && dep.version) versions.add(dep.version)
      walk(dep)
    }
  }
  walk(tree.dependencies?.["@prisma-resilience/core-effect3"])
  const resolveFrom = (file: string) => createRequire(file).resolve("effect")
  return {
    app: tree.dependencies?.effect?.version,
    core: [...versions],
    sameFile: resolveFrom(path.join(app, "node_modules/@prisma-resilience/core-effect3/package.json")) ===
      resolveFrom(path.join(app, "package.json"))
  }
}

/** `examples/<name>` outside the repository on the tarballs (test/support/packed.ts). */
const buildExample = (name: string, ours: Record<string, string>) =>
  kit.buildExample(work, name, { ...ours, "@prisma-resilience/kernel": tarballs.kernel! })

/** `node <script>` of an example on a free loopback port, against the cluster. */
const startServer = (dir: string, script: string, address: RegExp) =>
  kit.startServer(dir, script, address, { DATABASE_URL: cluster!.url })

/** The machine's own node when it is not the one running the tests (Node 20 here), to check `engines`. */
const olderSystemNode = async (): Promise<Array<string>> => {
  for (const candidate of ["/usr/bin/node", "/usr/local/bin/node"]) {
    const real = await fsp.realpath(candidate).catch(() => undefined)
    if (real === undefined || real === (await fsp.realpath(process.execPath))) continue
    return [candidate]
  }
  console.info("[artifact] no other node on this machine: engines checked on the pinned Node only")
  return []
}

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), "core-artifact-"))
  app = path.join(work, "app")
})

afterAll(async () => {
  kit.killAll()
  await cluster?.destroy()
  if (work) await fsp.rm(work, { recursive: true, force: true })
  // several apps with their node_modules: removing them takes a while
}, 120_000)

describe("@prisma-resilience/kernel, core and core-effect3 as installed from their tarballs", { timeout: 60_000 }, () => {
  it.each(["kernel", "core", "coreEffect3"] as const)("%s packs only the build output, README, LICENSE and package.json", async (name) => {
    const dir = packages[name]
    const packed = await timed(`npm pack ${name} (prepack builds)`, () =>
      run("npm", ["pack", "--json", "--pack-destination", work], { cwd: dir, timeoutMs: 90_000 }))
    // prepack's own output can precede npm's JSON on stdout
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m)))
    tarballs[name] = path.join(work, info.filename)
    const files: Array<string> = info.files.map((file: { path: string }) => file.path).sort()
    console.info(`[artifact] ${info.filename}, ${files.length} files:\n${files.join("\n")}`)

    // soft: one run reports every problem of the tarball
    const required = ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts"]
    expect.soft(required.filter((file) => !files.includes(file)), "missing").toEqual([])
    const unwanted = files.filter((file) =>
      /(^|\/)(src|test)\/|\.test\.|(^|\/)vitest\.config\.|(^|\/)tsconfig[^/]*$|\.tsbuildinfo/.test(file)
    )
    expect.soft(unwanted, "not for users").toEqual([])

    // tsc -b never deletes the output of a removed or renamed source: such a
    // leftover would ship and stay importable by its old path.
    const sources = new Set(
      (await fsp.readdir(path.join(dir, "src"), { recursive: true })).map((file) => file.replace(/\.ts$/, ""))
    )
    const stale = files.filter((file) =>
      file.startsWith("dist/") && !sources.has(file.replace(/^dist\//, "").replace(/\.(js\.map|d\.ts|js)$/, ""))
    )
    expect.soft(stale, "build output without a source").toEqual([])
    const unbuilt = (await fsp.readdir(path.join(dir, "src"), { recursive: true }))
      .filter((file) => file.endsWith(".ts"))
      .flatMap((file) => [`dist/${file.replace(/\.ts$/, ".js")}`, `dist/${file.replace(/\.ts$/, ".d.ts")}`])
      .filter((file) => !files.includes(file))
    expect.soft(unbuilt, "source without build output").toEqual([])

    // Every target of `exports` must be in the tarball, or that entry point
    // works here and fails for every user.
    const manifest = JSON.parse(await fsp.readFile(path.join(dir, "package.json"), "utf8"))
    const targets = new Set<string>()
    const collect = (value: unknown): void => {
      if (typeof value === "string" && !value.includes("*")) targets.add(value.replace(/^\.\//, ""))
      else if (value && typeof value === "object") Object.values(value).forEach(collect)
    }
    collect(manifest.exports)
    expect.soft([...targets].filter((target) => !files.includes(target)), "exported but not packed").toEqual([])
    expect.soft(Object.keys(manifest.dependencies ?? {}), "effect must be a peer").not.toContain("effect")
  }, 120_000)

  it("installs into an app outside the repository and type-checks it", async () => {
    expect(tarballs, "packed by the previous tests").toMatchObject({ kernel: expect.any(String), coreEffect3: expect.any(String) })
    await fsp.cp(example, app, {
      recursive: true,
      filter: copyFilter
    })
    const manifestPath = path.join(app, "package.json")
    const manifest = JSON.parse(await fsp.readFile(manifestPath, "utf8"))
    manifest.dependencies["@prisma-resilience/core-effect3"] = `file:${tarballs.coreEffect3}`
    // Not on the registry yet: core's dependency on it is met by this tarball.
    manifest.dependencies["@prisma-resilience/kernel"] = `file:${tarballs.kernel}`
    await fsp.writeFile(manifestPath, JSON.stringify(manifest, null, 2))

    await timed("npm install", () => npm(["install", "--no-audit", "--no-fund", "--prefer-offline"], 150_000))
    // generation is WebAssembly; the schema engine it would download first is not needed
    await timed("prisma generate", () =>
      npx(["prisma", "generate"], 60_000, generateEnv))
    await timed("tsc", () => npx(["tsc", "-p", "."], 120_000))
    const built = await fsp.readdir(path.join(app, "dist"))
    expect(built).toEqual(expect.arrayContaining(["main.js", "promise.js"]))
  }, 300_000)

  it("runs the Effect program against PostgreSQL: warm-up, health, a query, a transaction", async () => {
    cluster = await timed("start PostgreSQL", () =>
      startCluster({ dataDir: path.join(work, "postgres") }))
    kit.hide(cluster.password)
    const client = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 5_000 })
    await client.connect()
    try {
      await client.query(await fsp.readFile(path.join(app, "prisma", "schema.sql"), "utf8"))
    } finally {
      await client.end()
    }

    const { stdout, stderr } = await timed("node dist/main.js", () => node("dist/main.js"))
    // core-effect3 says Node >= 20.19 too: the same program on the machine's own Node
    for (const older of await olderSystemNode()) {
      const again = await run(older, ["dist/main.js"], { cwd: app, timeoutMs: 30_000, env: { ...childEnv, DATABASE_URL: cluster!.url } })
      expect(jsonLine(`main.js (core-effect3) on ${older}`, again.stdout).health).toMatchObject({ status: "pass" })
    }
    expect((stdout + stderr).includes(cluster.password), "password in the output").toBe(false)
    expect(stdout + stderr).toMatch(/Warmup complete in \d+ ms/)
    const result = jsonLine("main.js", stdout)
    expect(result.health).toMatchObject({ status: "pass", warmupAttempts: expect.any(Number) })
    expect(result.health.warmupMs).toBeGreaterThanOrEqual(0)
    expect(result.account).toMatchObject({ id: expect.any(Number), balanceCents: 10_000 })
    expect(result.account.email).toMatch(/@example\.com$/)
    expect(result.transfer).toEqual({ ...result.account, balanceCents: 7_500 })
  })

  it("runs the Promise adapter from ordinary async code", async () => {
    expect(cluster, "started by the previous test").toBeDefined()
    const { stdout, stderr } = await timed("node dist/promise.js", () => node("dist/promise.js"))
    expect((stdout + stderr).includes(cluster!.password), "password in the output").toBe(false)
    const result = jsonLine("promise.js", stdout)
    expect(result.warmup).toMatchObject({ durationMs: expect.any(Number), attempts: expect.any(Number) })
    expect(result.warmup.attempts).toBeGreaterThanOrEqual(1)
    expect(result.health).toMatchObject({ status: "pass" })
    expect(result.account).toMatchObject({ id: expect.any(Number), balanceCents: 5_000 })
    expect(result.transfer).toEqual({ ...result.account, balanceCents: 6_000 })
  })

  it("uses the app's one copy of effect (a peer, never nested)", async () => {
    const effect = await effectOfCore()
    console.info(`[artifact] effect: app ${effect.app}, seen by core ${effect.core.join(", ")}`)
    const declared = JSON.parse(await fsp.readFile(path.join(example, "package.json"), "utf8")).dependencies.effect
    expect(effect).toEqual({ app: declared, core: [declared], sameFile: true })
  })

  it("keeps internals out of reach", async () => {
    for (const specifier of ["@prisma-resilience/core-effect3/internal/attempt.js", "@prisma-resilience/core-effect3/dist/index.js"]) {
      const probe = `import(${JSON.stringify(specifier)}).then(() => console.log("resolved"), (e) => console.log(e.code))`
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe], { cwd: app, timeoutMs: 15_000 })
      expect(stdout.trim(), specifier).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
    }
  })

  // An existing Prisma 7 app already has an effect 3: prisma's own
  // (@prisma/config pins 3.20.0), hoisted to the top of node_modules. The
  // Effect 3 line's peer range admits it, so `npm install
  // @prisma-resilience/core-effect3` (the README's command) changes nothing
  // else in the app, and core runs on that copy.
  it("works with the effect a Prisma 7 app already has (prisma's, the oldest the peer range admits)", async () => {
    expect(cluster, "started by an earlier test").toBeDefined()
    // The app as it was before core: prisma and its client, no effect of its own.
    const manifestPath = path.join(app, "package.json")
    const manifest = JSON.parse(await fsp.readFile(manifestPath, "utf8"))
    delete manifest.dependencies.effect
    delete manifest.dependencies["@prisma-resilience/core-effect3"]
    delete manifest.dependencies["@prisma-resilience/kernel"]
    await fsp.writeFile(manifestPath, JSON.stringify(manifest, null, 2))
    await fsp.rm(path.join(app, "node_modules"), { recursive: true, force: true })
    await fsp.rm(path.join(app, "package-lock.json"), { force: true })
    await timed("npm install (the Prisma 7 app alone)", () =>
      npm(["install", "--no-audit", "--no-fund", "--prefer-offline"], 150_000))
    // The README's command, with the tarballs standing in for the registry.
    await timed("npm install @prisma-resilience/core-effect3", () =>
      npm(["install", tarballs.kernel!, tarballs.coreEffect3!, "--no-audit", "--no-fund", "--prefer-offline"], 150_000))
    await timed("prisma generate", () =>
      npx(["prisma", "generate"], 60_000, generateEnv))
    const prismas = JSON.parse(await fsp.readFile(path.join(app, "node_modules/@prisma/config/package.json"), "utf8"))
    const pinned: string = prismas.dependencies.effect
    expect(pinned, "what @prisma/config depends on").toMatch(/^3\.\d+\.\d+$/)
    const effect = await effectOfCore()
    console.info(`[artifact] effect without a dependency of the app's own: ${JSON.stringify(effect)}`)
    expect(effect).toMatchObject({ core: [pinned], sameFile: true })
    await timed(`tsc (effect ${pinned})`, () => npx(["tsc", "-p", "."], 120_000))
    const { stdout } = await timed(`node dist/main.js (effect ${pinned})`, () => node("dist/main.js"))
    const result = jsonLine(`main.js (effect ${pinned})`, stdout)
    expect(result.health).toMatchObject({ status: "pass" })
    expect(result.transfer.balanceCents).toBe(7_500)
  }, 240_000)

  // The Effect 3 path end to end: an @effect/platform HTTP app, as an
  // existing Effect 3 + Prisma 7 team has it, on core-effect3's layer.
  it("runs examples/effect3-http: an Effect 3 HTTP server on core-effect3", async () => {
    expect(cluster, "started by an earlier test").toBeDefined()
    const dir = await buildExample("effect3-http", { "@prisma-resilience/core-effect3": tarballs.coreEffect3! })
    const server = await startServer(dir, "dist/main.js", /Listening on (http:\/\/127\.0\.0\.1:\d+)/)
    try {
      const call = caller(server.base)
      expect(await call("GET", "/health")).toMatchObject({ status: 200, body: { status: "pass" } })
      const email = `effect3-${process.pid}@example.com`
      const created = await call("POST", "/accounts", { email, balanceCents: 100 })
      expect(created).toMatchObject({ status: 201, body: { email, balanceCents: 100 } })
      expect(await call("POST", "/accounts", { email, balanceCents: 1 })).toEqual({ status: 409, body: { error: "email taken" } })
      expect(await call("GET", `/accounts/${created.body.id}`)).toEqual({ status: 200, body: created.body })
      expect(await call("GET", "/accounts/999999999")).toEqual({ status: 404, body: { error: "not found" } })
    } finally {
      expect(await server.stop(), server.output()).toBe(0)
    }
  }, 300_000)

  // An app begun with `npm install effect` (latest: Effect 4), then core.
  it("a new app begun with `npm install effect` (latest) installs core next to it", async () => {
    const dir = path.join(work, "fresh-effect-app")
    await fsp.mkdir(dir)
    await fsp.writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "fresh", private: true, type: "module" }))
    const inDir = (args: ReadonlyArray<string>) => run("npm", args, { cwd: dir, timeoutMs: 150_000 })
    await timed("npm install effect (fresh app)", () => inDir(["install", "effect", "--no-audit", "--no-fund"]))
    await timed("npm install @prisma-resilience/core (fresh app)", () =>
      inDir(["install", tarballs.kernel!, tarballs.core!, "--no-audit", "--no-fund", "--prefer-offline"]))
    const effect = JSON.parse(await fsp.readFile(path.join(dir, "node_modules/effect/package.json"), "utf8")).version
    expect(effect, "npm's latest effect").toMatch(/^4\./)
    const probe = `import("@prisma-resilience/core").then((m) => console.log(JSON.stringify(Object.keys(m).sort())))`
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", probe], { cwd: dir, timeoutMs: 30_000 })
    expect(JSON.parse(stdout)).toEqual(expect.arrayContaining(["Database", "createResilientPrisma", "isRetryable"]))
  }, 300_000)

  // A Prisma 7 app (prisma brings effect 3.20.0) takes Effect 4 and core with
  // the README's `npm install "effect@^4.1.5" @prisma-resilience/core`: a
  // plain `effect` would be met by prisma's 3.20.0 and fail with ERESOLVE.
  // Also run under the machine's own Node when that is older (core says
  // Node >= 20.19).
  it("a Prisma 7 app: the README's command, then plain tsc and node, Promise adapter included", async () => {
    expect(cluster, "started by an earlier test").toBeDefined()
    const dir = path.join(work, "effect4-app")
    await fsp.cp(path.join(repo, "examples", "basic"), dir, {
      recursive: true,
      filter: copyFilter
    })
    const manifestPath = path.join(dir, "package.json")
    const manifest = JSON.parse(await fsp.readFile(manifestPath, "utf8"))
    delete manifest.dependencies.effect
    delete manifest.dependencies["@prisma-resilience/core"]
    await fsp.writeFile(manifestPath, JSON.stringify(manifest, null, 2))
    const inDir = (command: string, args: ReadonlyArray<string>, timeoutMs: number, env = childEnv) =>
      run(command, args, { cwd: dir, timeoutMs, env })
    await timed("npm install (the app before core)", () => inDir("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], 150_000))
    // `effect` without a version: whatever the registry's latest is, as a user gets it
    await timed("npm install effect@^4.1.5 @prisma-resilience/core", () =>
      inDir("npm", ["install", "effect@^4.1.5", tarballs.kernel!, tarballs.core!, "--no-audit", "--no-fund", "--prefer-offline"], 150_000))
    const installed = JSON.parse(await fsp.readFile(path.join(dir, "node_modules/effect/package.json"), "utf8")).version
    console.info(`[artifact] the Prisma 7 app got effect ${installed}`)
    expect(installed).toMatch(/^4\./)
    const seenByCore = createRequire(path.join(dir, "node_modules/@prisma-resilience/core/package.json")).resolve("effect")
    expect(seenByCore, "core uses the app's effect").toBe(createRequire(manifestPath).resolve("effect"))
    await timed("prisma generate (effect4-app)", () =>
      inDir("npx", ["--no", "--", "prisma", "generate"], 60_000, generateEnv))
    await timed("tsc (effect4-app)", () => inDir("npx", ["--no", "--", "tsc", "-p", "."], 120_000))
    const env = { ...childEnv, DATABASE_URL: cluster!.url }
    const nodes = [process.execPath, ...(await olderSystemNode())]
    for (const nodeBinary of nodes) {
      const version = (await run(nodeBinary, ["--version"], { cwd: dir, timeoutMs: 10_000 })).stdout.trim()
      const main = await timed(`node ${version} dist/main.js (effect4-app)`, () =>
        run(nodeBinary, ["dist/main.js"], { cwd: dir, timeoutMs: 30_000, env }))
      expect((main.stdout + main.stderr).includes(cluster!.password), "password in the output").toBe(false)
      const result = jsonLine(`main.js on ${version}`, main.stdout)
      expect(result.health).toMatchObject({ status: "pass" })
      expect(result.transfer).toEqual({ ...result.account, balanceCents: 7_500 })
      const promise = await timed(`node ${version} dist/promise.js (effect4-app)`, () =>
        run(nodeBinary, ["dist/promise.js"], { cwd: dir, timeoutMs: 30_000, env }))
      const adapter = jsonLine(`promise.js on ${version}`, promise.stdout)
      expect(adapter.health).toMatchObject({ status: "pass" })
      expect(adapter.transfer).toEqual({ ...adapter.account, balanceCents: 6_000 })
    }
  }, 300_000)

  it("the kernel installs alone and runs under plain node, with nothing else in its tree", async () => {
    expect(tarballs.kernel, "packed by an earlier test").toBeDefined()
    const alone = path.join(work, "kernel-app")
    await fsp.mkdir(alone)
    await fsp.writeFile(
      path.join(alone, "package.json"),
      JSON.stringify({ name: "kernel-app", private: true, type: "module", dependencies: { "@prisma-resilience/kernel": `file:${tarballs.kernel}` } })
    )
    await timed("npm install (kernel alone)", () =>
      run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: alone, timeoutMs: 90_000 }))
    const tree: LsNode = JSON.parse((await run("npm", ["ls", "--all", "--json"], { cwd: alone, timeoutMs: 30_000 })).stdout)
    expect(Object.keys(tree.dependencies ?? {})).toEqual(["@prisma-resilience/kernel"])
    expect(tree.dependencies?.["@prisma-resilience/kernel"]?.dependencies ?? {}, "the kernel brings nothing").toEqual({})
    const installed = await fsp.readdir(path.join(alone, "node_modules"))
    expect(installed.filter((name) => !name.startsWith(".")), "node_modules").toEqual(["@prisma-resilience"])

    const script = `
      import { CircuitBreaker, diagnose, kindOfCall, newRecording, recordAttempt, redact } from "@prisma-resilience/kernel"
      import { fromEnv, SettingError } from "@prisma-resilience/kernel/variables"
      const settings = fromEnv({ DB_POOL_MAX: "3", DB_RETRY_DELAYS_MS: "none" })
      let rejected
      try { fromEnv({ DB_CIRCUIT_RESET_MS: "0" }) } catch (e) { rejected = e instanceof SettingError ? e.message : String(e) }
      const breaker = CircuitBreaker.make({ failureThreshold: 1, resetTimeoutMs: 100 }, () => {})
      breaker.onFailure(0, breaker.acquire(0), "ConnectionError")
      const recording = newRecording()
      const client = { order: { create: async () => 1, findMany: async () => [] } }
      await recordAttempt(client, async (c) => { await c.order.findMany(); await c.order.create({}) }, recording)
      console.log(JSON.stringify({
        pool: settings.pool.max, delays: settings.retry.delaysMs, rejected,
        tag: diagnose(Object.assign(new Error("x"), { code: "40001" })).tag,
        kind: kindOfCall("$queryRaw", [["SELECT 1"]]),
        breaker: breaker.acquire(50)._tag,
        recording: { operation: recording.operation, kind: recording.kind, calls: recording.calls },
        redacted: redact("postgresql://app:s3cret@127.0.0.1:5432/db")
      }))
    `
    await fsp.writeFile(path.join(alone, "check.mjs"), script)
    // On the pinned Node and on the machine's own (the kernel says Node >= 20.19)
    for (const nodeBinary of [process.execPath, ...(await olderSystemNode())]) {
      const { stdout } = await run(nodeBinary, ["check.mjs"], { cwd: alone, timeoutMs: 15_000 })
      const result = jsonLine(`kernel check.mjs on ${nodeBinary}`, stdout)
      expect(result).toEqual(kernelCheck)
    }
  })
})

const kernelCheck = {
  pool: 3,
  delays: [],
  rejected: expect.stringMatching(/^DB_CIRCUIT_RESET_MS must be a positive integer number of milliseconds; got "0"$/),
  tag: "TransactionError",
  kind: "read",
  breaker: "Rejected",
  recording: { operation: "order.findMany", kind: "write", calls: 2 },
  redacted: expect.not.stringContaining("s3cret")
}

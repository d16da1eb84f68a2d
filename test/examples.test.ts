// The Promise apps of issue 19 as a user has them: examples/fastify and
// examples/serverless copied outside the repository, installed from the
// packed tarballs of the kernel and the core package (`file:` dependencies,
// no workspace, no source alias), their Prisma clients generated (never
// migrate: tables come from plain SQL), type-checked with plain `tsc` and run
// with plain `node` against a real embedded PostgreSQL on loopback. Both
// examples install in parallel, sharing npm's cache.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { caller, childEnv, createKit, repo } from "./support/packed.js"

/**
 * The package the examples' Promise code comes from. Moving the examples to
 * another core line is this constant, plus one dependency line in each
 * example's package.json and one import line in each of its source files
 * (the first test checks that those agree with it).
 */
const CORE = { name: "@prisma-resilience/core", dir: path.join(repo, "packages", "core") } as const
const KERNEL = { name: "@prisma-resilience/kernel", dir: path.join(repo, "packages", "kernel") } as const

/** What a user installs besides the core package and its `effect` peer, exactly. */
const prismaStack = { "@prisma/adapter-pg": "7.10.1", "@prisma/client": "7.10.0", pg: "8.16.3" }
const examples = {
  fastify: { ...prismaStack, fastify: "5.12.8" },
  serverless: prismaStack
} as const
type Example = keyof typeof examples

const kit = createKit("examples")
let work: string
let cluster: Cluster | undefined
/** Each example's install and build, started together once the tarballs exist; awaited by its test. */
const built: Partial<Record<Example, Promise<string>>> = {}

const manifestOf = async (dir: string) => JSON.parse(await fsp.readFile(path.join(dir, "package.json"), "utf8"))

beforeAll(async () => {
  work = await fsp.mkdtemp(path.join(os.tmpdir(), "examples-"))
  const started = kit.timed("start PostgreSQL", () => startCluster({ dataDir: path.join(work, "postgres") }))
  // One after the other: each prepack runs tsc -b, and core's build references the kernel's.
  const kernel = await kit.pack(KERNEL.dir, work)
  const core = await kit.pack(CORE.dir, work)
  for (const name of Object.keys(examples) as Array<Example>) {
    const promise = kit.buildExample(work, name, { [CORE.name]: core.tarball, [KERNEL.name]: kernel.tarball })
    promise.catch(() => undefined) // reported by the example's own test
    built[name] = promise
  }
  cluster = await started
  kit.hide(cluster.password)
}, 180_000)

afterAll(async () => {
  kit.killAll()
  await Promise.allSettled(Object.values(built))
  await cluster?.destroy()
  if (work) await fsp.rm(work, { recursive: true, force: true })
}, 120_000)

describe(`examples/fastify and examples/serverless on ${CORE.name}, from the packed tarballs`, () => {
  it.each(Object.keys(examples) as Array<Example>)(
    "examples/%s lists exactly what a user installs and imports only the core package's Promise adapter",
    async (name) => {
      const dir = path.join(repo, "examples", name)
      const manifest = await manifestOf(dir)
      const core = await manifestOf(CORE.dir)
      expect(manifest.dependencies).toEqual({
        [CORE.name]: core.version,
        effect: expect.any(String),
        ...examples[name]
      })
      // the core package's peer: the example's effect has the peer's major (npm install checks the range)
      const peer: string = core.peerDependencies.effect
      expect(manifest.dependencies.effect.split(".")[0], `effect ${peer}`).toBe(peer.replace(/^[\^~]/, "").split(".")[0])
      expect(manifest.devDependencies).toMatchObject({ prisma: "7.10.1", typescript: expect.any(String) })
      const sources = await fsp.readdir(path.join(dir, "src"))
      const imports: Array<string> = []
      for (const file of sources.filter((file) => file.endsWith(".ts"))) {
        const text = await fsp.readFile(path.join(dir, "src", file), "utf8")
        imports.push(...[...text.matchAll(/from "(@prisma-resilience\/[^"]+)"/g)].map((m) => m[1]!))
      }
      expect(imports.length, "some source imports the adapter").toBeGreaterThan(0)
      expect(imports.filter((specifier) => specifier !== CORE.name && !specifier.startsWith(`${CORE.name}/`))).toEqual([])
    }
  )

  // A Fastify app moved to createResilientPrisma (issue 19): Prisma's own
  // error class still tells a duplicate, and health is the layer's.
  it("runs examples/fastify: routes, 409 on P2002 through Prisma's own error class, /health", async () => {
    const dir = await built.fastify!
    expect(cluster, "started by beforeAll").toBeDefined()
    await kit.createTables(cluster!.url, dir)
    const server = await kit.startServer(dir, "dist/server.js", /listening on (http:\/\/127\.0\.0\.1:\d+)/, {
      DATABASE_URL: cluster!.url
    })
    try {
      const call = caller(server.base)
      expect(await call("GET", "/health")).toMatchObject({ status: 200, body: { status: "pass" } })
      const email = `fastify-${process.pid}@example.com`
      const created = await call("POST", "/users", { email, name: "Ada" })
      expect(created).toMatchObject({ status: 201, body: { email, name: "Ada", id: expect.any(Number) } })
      expect(await call("POST", "/users", { email, name: "Bob" })).toEqual({ status: 409, body: { error: "email taken" } })
      expect(await call("GET", `/users/${created.body.id}`)).toEqual({ status: 200, body: created.body })
      expect(await call("GET", "/users/999999999")).toEqual({ status: 404, body: { error: "not found" } })
    } finally {
      expect(await server.stop(), server.output()).toBe(0)
    }
  }, 240_000)

  // A serverless function's cold start: every invocation a fresh process, as
  // a platform starts one; the resilient handler answers as the raw one does.
  it("runs examples/serverless: each invocation a fresh process, the same answers as the raw handler", async () => {
    const dir = await built.serverless!
    expect(cluster, "started by beforeAll").toBeDefined()
    await kit.createTables(cluster!.url, dir)
    const invoke = async (handler: string, route: string) => {
      const { stdout, stderr } = await kit.run(process.execPath, ["dist/invoke.js", path.join(dir, "dist", handler), route], {
        cwd: dir,
        timeoutMs: 30_000,
        env: { ...childEnv, DATABASE_URL: cluster!.url }
      })
      expect((stdout + stderr).includes(cluster!.password), "password in the output").toBe(false)
      return kit.jsonLine(`invoke ${handler} ${route}`, stdout)
    }
    const resilient = await invoke("handler.js", "/users")
    const raw = await invoke("handler-raw.js", "/users")
    expect(resilient).toMatchObject({ status: 200, body: { users: expect.any(Number) } })
    expect(resilient.body).toEqual(raw.body)
    expect(await invoke("handler.js", "/health")).toMatchObject({ status: 200, body: { status: "pass" } })
    console.info(
      `[examples] serverless first response: resilient ${Math.round(resilient.firstResponseMs)} ms, raw ${
        Math.round(raw.firstResponseMs)
      } ms (one sample each; npm run bench has the medians)`
    )
  }, 240_000)
})

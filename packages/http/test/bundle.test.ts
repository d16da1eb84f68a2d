// What the shipped bundle (dist/bundle, as `npm start` runs it) loads at
// start: the modules main.mjs reaches through static imports, which V8 keeps,
// source text and all, for the life of the process.
import { build } from "esbuild"
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { bundleOptions } from "../scripts/bundleOptions.mjs"

const bundleDir = fileURLToPath(new URL("../dist/bundle", import.meta.url))

const source = (file: string) => fs.readFileSync(path.join(bundleDir, file), "utf8")
const containing = (files: ReadonlyArray<string>, text: string) => files.filter((file) => source(file).includes(text))

/** main.mjs and every chunk it imports statically, transitively (not `import()`). */
const startPath = (): ReadonlyArray<string> => {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const [, imported] of source(file).matchAll(/(?:\bfrom\s*|\bimport\s*)"\.\/([^"]+\.mjs)"/g)) visit(imported!)
  }
  visit("main.mjs")
  return [...seen]
}

describe("the service bundle's start path", () => {
  it("has main.mjs import its chunks statically, so that the check below sees them", () => {
    const files = startPath()
    expect(files.length).toBeGreaterThan(2)
    // Effect's runtime is on it: the walk followed the imports.
    expect(containing(files, "FiberRuntime")).not.toEqual([])
  })

  it("leaves out the Scalar docs page (3.3 MB), which /docs imports on its first request", () => {
    const files = startPath()
    // Scalar's script (the id of the style element it injects). Effect 4's
    // HttpApiScalar module, on the start path, names "@scalar/api-reference"
    // itself in the URL of its CDN variant, so that name no longer tells the
    // script apart.
    const scalarScript = "`scalar-style`"
    expect(containing(files, scalarScript)).toEqual([])
    // …and the bundle does hold it, in a chunk of its own.
    const others = fs.readdirSync(bundleDir).filter((file) => file.endsWith(".mjs") && !files.includes(file))
    expect(containing(others, scalarScript)).not.toEqual([])
  })

  it("leaves out undici, which only @effect/platform-node's unused HTTP client needs", () => {
    expect(containing(startPath(), "undici/lib/")).toEqual([])
  })

  it("is Latin-1 throughout: one character above U+00FF makes V8 keep a whole file's source at two bytes per character", () => {
    const wide = startPath().flatMap((file) => {
      const match = /[^\u0000-\u00ff]/.exec(source(file))
      return match ? [`${file}: ${JSON.stringify(match[0])} at ${match.index}`] : []
    })
    expect(wide).toEqual([])
  })
})

describe("the bundle options", () => {
  it("still give a program that uses @effect/platform-node's undici client a working undici, loaded when first used", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bundle-undici-"))
    try {
      const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
      fs.writeFileSync(
        path.join(dir, "entry.mjs"),
        [
          "import { NodeHttpClient } from \"@effect/platform-node\"",
          "import { Effect } from \"effect\"",
          // undici installs its global dispatcher when its module is evaluated.
          "const installed = () => globalThis[Symbol.for(\"undici.globalDispatcher.2\")] !== undefined",
          "const before = installed()",
          "const request = await Effect.runPromise(Effect.scoped(Effect.map(NodeHttpClient.makeDispatcher, (d) => typeof d.request)))",
          "console.log(JSON.stringify({ before, request, after: installed() }))"
        ].join("\n")
      )
      await build({
        ...bundleOptions,
        absWorkingDir: repoRoot,
        entryPoints: [path.join(dir, "entry.mjs")],
        outdir: path.join(dir, "out"),
        // Effect 4 and @effect/platform-node 4 are the http package's own (the root keeps Effect 3).
        nodePaths: [path.join(repoRoot, "packages/http/node_modules"), path.join(repoRoot, "node_modules")],
        logLevel: "silent"
      })
      // @effect/platform-node 4 imports undici with import() itself, so it
      // lands in a chunk of its own rather than in entry.mjs: the output holds it.
      const bundled = fs.readdirSync(path.join(dir, "out")).filter((file) => file.endsWith(".mjs"))
        .map((file) => fs.readFileSync(path.join(dir, "out", file), "utf8")).join("\n")
      expect(bundled).toContain("undici/lib/")
      // Run from outside the repository: nothing resolves from node_modules.
      const output = execFileSync(process.execPath, [path.join(dir, "out", "entry.mjs")], { cwd: dir, encoding: "utf8" })
      expect(JSON.parse(output.trim())).toEqual({ before: false, request: "function", after: true })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

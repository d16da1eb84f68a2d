// Bundles the compiled service (dist/main.js, dist/migrate.js) into one ESM
// file each under dist/bundle/, which `npm start` and `npm run db:migrate`
// run. Loading ~800 separate ESM modules of node_modules cost about 1.3 s of
// a 1.35 s start; the bundle starts in about half a second.
// The embedded PostgreSQL (devdb, a development dependency) stays outside:
// it is imported only when DATABASE_URL is not set.
import { build } from "esbuild"
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const packageDir = fileURLToPath(new URL("..", import.meta.url))
const outdir = path.join(packageDir, "dist/bundle")
// Built beside and swapped in whole: chunks of an earlier build (hashed
// names) must not linger, and a process started meanwhile finds a complete one.
const next = `${outdir}.next`
fs.rmSync(next, { recursive: true, force: true })
const started = performance.now()
await build({
  absWorkingDir: packageDir,
  entryPoints: ["dist/main.js", "dist/migrate.js"],
  outdir: next,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  splitting: true,
  sourcemap: "linked",
  external: ["@prisma-resilience/devdb"],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: "warning"
})
fs.rmSync(outdir, { recursive: true, force: true })
fs.renameSync(next, outdir)
console.log(`service bundled into packages/http/dist/bundle in ${Math.round(performance.now() - started)} ms`)

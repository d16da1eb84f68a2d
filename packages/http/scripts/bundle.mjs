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
import { bundleOptions } from "./bundleOptions.mjs"

const packageDir = fileURLToPath(new URL("..", import.meta.url))
const outdir = path.join(packageDir, "dist/bundle")
// Built beside and swapped in whole: chunks of an earlier build (hashed
// names) must not linger, and a process started meanwhile finds a complete one.
const next = `${outdir}.next`
fs.rmSync(next, { recursive: true, force: true })
const started = performance.now()
await build({
  ...bundleOptions,
  absWorkingDir: packageDir,
  entryPoints: ["dist/main.js", "dist/migrate.js"],
  outdir: next,
  sourcemap: "linked"
})
fs.rmSync(outdir, { recursive: true, force: true })
fs.renameSync(next, outdir)
console.log(`service bundled into packages/http/dist/bundle in ${Math.round(performance.now() - started)} ms`)

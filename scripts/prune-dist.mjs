// Removes from a package's dist/ what no source in src/ builds any more:
// `tsc -b` never deletes the output of a renamed or deleted module, and a
// stale module in a tarball is the incident this project answers. Only stale
// files go, so tests importing the live dist meanwhile are undisturbed.
//   node scripts/prune-dist.mjs <package dir>
import fs from "node:fs"
import path from "node:path"

const packageDir = path.resolve(process.argv[2] ?? ".")
const dist = path.join(packageDir, "dist")
const src = path.join(packageDir, "src")
const outputs = /\.(d\.ts|js\.map|js)$/

const walk = (dir) =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]
    )
    : []

let pruned = 0
for (const file of walk(dist)) {
  const relative = path.relative(dist, file)
  if (!outputs.test(relative)) continue
  if (!fs.existsSync(path.join(src, relative.replace(outputs, ".ts")))) {
    fs.rmSync(file)
    pruned++
  }
}
if (pruned > 0) {
  // the build info would otherwise still list the removed outputs as up to date
  fs.rmSync(path.join(packageDir, ".tsbuildinfo"), { recursive: true, force: true })
  console.log(`prune-dist: removed ${pruned} stale file(s) from ${path.relative(process.cwd(), dist) || dist}`)
}

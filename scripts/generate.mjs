// Runs `prisma generate` offline for every schema of the repository: the
// service's own (prisma/, generated into packages/http/src/db) and the fixture of core's integration tests.
// Generation itself is WebAssembly, but the CLI first downloads the native
// schema engine unless PRISMA_SCHEMA_ENGINE_BINARY names an existing file;
// this machine has no route to that download.
import { spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const schemas = ["prisma/schema.prisma", "packages/core-effect3/test/fixture/schema.prisma"]

const require = createRequire(import.meta.url)
const cli = path.join(path.dirname(require.resolve("prisma/package.json")), "build", "index.js")
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: "1",
  CHECKPOINT_DISABLE: "1"
}
for (const schema of schemas) {
  const started = Date.now()
  const result = spawnSync(process.execPath, [cli, "generate", "--schema", schema], { cwd: root, stdio: "inherit", env })
  if (result.status !== 0) {
    console.error(`prisma generate ${schema} failed (exit ${result.status ?? result.signal})`)
    process.exit(result.status ?? 1)
  }
  console.log(`prisma client of ${schema} generated in ${Date.now() - started} ms`)
}

// Node 20 is past its end of life and Prisma 7, @effect/platform-node 4 and
// vitest 5 want Node >= 22. The machine's own Node may still be 20, so the
// repository pins Node in devDependencies (the npm package `node`): npm puts
// node_modules/.bin first on PATH, so every npm script, test and `npm start`
// runs on the pinned Node. This test fails if that chain breaks.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"

const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))

describe("the Node the tests run on", () => {
  it("is the one pinned in the root package.json, not the machine's", () => {
    const pinned: string = manifest.devDependencies.node
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/)
    expect(process.version).toBe(`v${pinned}`)
    expect(Number(pinned.split(".")[0])).toBeGreaterThanOrEqual(22)
  })

  it("lets npm run the node package's install script (allowScripts)", () => {
    expect(manifest.allowScripts.node).toBe(true)
  })
})

import { defineProject } from "vitest/config"
import { alias } from "../vitest.shared.js"

// One file per binding, each running the whole suite; the shared server of
// core's integration tests (its globalSetup) serves the tests that do not
// stop or restart theirs.
export default defineProject({
  resolve: { alias },
  test: {
    name: "behaviour",
    include: ["*.test.ts"],
    setupFiles: ["../vitest.setup.ts"],
    globalSetup: ["../packages/core-effect3/test/support/globalSetup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})

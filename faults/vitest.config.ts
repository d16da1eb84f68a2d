import { defineConfig } from "vitest/config"
import { alias } from "../vitest.shared.js"

// Not part of `npm test`'s projects: `npm run test:faults` runs it (CI too).
// One file at a time: the scenarios measure recovery and latency, and a second
// suite competing for the 2 cores would blur them.
export default defineConfig({
  resolve: { alias },
  test: {
    name: "faults",
    include: ["**/*.test.ts"],
    setupFiles: ["../vitest.setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false
  }
})

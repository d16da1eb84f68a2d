import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "http",
    include: ["test/**/*.test.ts"],
    setupFiles: ["../../vitest.setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})

import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "surface",
    include: ["**/*.test.ts"],
    setupFiles: ["../vitest.setup.ts"]
  }
})

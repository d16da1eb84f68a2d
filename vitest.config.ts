import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.js"

export default defineConfig({
  test: {
    // Most test time is waiting (timeouts, retry delays, PostgreSQL starting):
    // one worker per core left the two cores idle most of the run
    // (core-effect3 alone: 143 s with the default, 53 s with 3 workers).
    maxWorkers: 3,
    minWorkers: 1,
    projects
  }
})

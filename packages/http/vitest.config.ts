import { fileURLToPath } from "node:url"
import type { Plugin } from "vite"
import { defineProject } from "vitest/config"
import { alias } from "../../vitest.shared.js"

const self = fileURLToPath(import.meta.url)

/**
 * One Effect 4 for the service and core. The root keeps Effect 3 hoisted, so
 * npm nests effect 4.1.5 under packages/http and again under packages/core;
 * two copies do not share state kept in a module (a `Redacted` made by one
 * cannot be read by the other). Core's `effect` imports resolve from here, as
 * in the bundle (scripts/bundleOptions.mjs).
 */
const oneEffect: Plugin = {
  name: "one-effect",
  enforce: "pre",
  resolveId(source, importer, options) {
    if (!/^effect(?:\/|$)/.test(source) || importer === undefined || !/[\\/]packages[\\/]core[\\/]/.test(importer)) return null
    return this.resolve(source, self, { ...options, skipSelf: true })
  }
}

export default defineProject({
  plugins: [oneEffect],
  resolve: { alias },
  test: {
    name: "http",
    include: ["test/**/*.test.ts"],
    setupFiles: ["../../vitest.setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})

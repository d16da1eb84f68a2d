// The list of test projects. vitest 3.2 warns when it loads this file by
// itself, so vitest.config.ts passes it to `test.projects`.
export default [
  "packages/kernel",
  "packages/core",
  "packages/core-effect3",
  "packages/devdb",
  "packages/http",
  "test",
  "behaviour"
]

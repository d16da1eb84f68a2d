// Any unhandled rejection or uncaught exception fails the run: database faults
// must surface as typed errors, never as stray rejections.
import { afterAll, expect } from "vitest"

const stray: Array<string> = []
const record = (kind: string) => (error: unknown) => {
  stray.push(`${kind}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`)
}
process.on("unhandledRejection", record("unhandledRejection"))
process.on("uncaughtException", record("uncaughtException"))

afterAll(() => {
  expect(stray, "unhandled errors during this file").toEqual([])
})

// One invocation in a fresh process, as a platform's cold start runs one:
// loads the handler (argv[2]: a module path, default ./handler.js), sends it
// one Request (argv[3]: the path, default /users), and prints the status, the
// body, the time from process start to the Response and the memory then.
import { pathToFileURL } from "node:url"

const module = process.argv[2] ?? new URL("./handler.js", import.meta.url).pathname
const route = process.argv[3] ?? "/users"
const { default: handler } = (await import(pathToFileURL(module).href)) as {
  default: (request: Request) => Promise<Response>
}
const response = await handler(new Request(`http://127.0.0.1${route}`))
const body: unknown = await response.json()
// performance.now() counts from the process's time origin: start to first response.
const firstResponseMs = performance.now()
console.log(JSON.stringify({ status: response.status, body, firstResponseMs, rssMiB: process.memoryUsage().rss / 2 ** 20 }))
// A function instance is frozen, not drained: do not wait for the pool's idle timers.
process.exit(0)

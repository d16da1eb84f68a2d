// The part of autocannon 9's programmatic API the benchmarks use (the package
// ships no types, and @types/autocannon is not a dependency).
declare module "autocannon" {
  import type { EventEmitter } from "node:events"

  namespace autocannon {
    interface Client extends EventEmitter {
      on(event: "headers", listener: (info: { readonly statusCode: number; readonly headers: ReadonlyArray<string> }) => void): this
      on(event: string, listener: (...args: Array<any>) => void): this
    }
    interface Options {
      readonly url: string
      readonly connections?: number
      /** seconds */
      readonly duration?: number
      /** seconds a request may take before its connection is reset (default 10) */
      readonly timeout?: number
      readonly pipelining?: number
      readonly method?: string
      readonly headers?: Record<string, string>
      readonly setupClient?: (client: Client) => void
    }
    interface Stats {
      readonly average: number
      readonly mean: number
      readonly stddev: number
      readonly min: number
      readonly max: number
      readonly p50: number
      readonly p90: number
      readonly p99: number
    }
    interface Result {
      readonly requests: Stats & { readonly total: number; readonly sent: number }
      readonly latency: Stats
      readonly errors: number
      readonly timeouts: number
      readonly resets: number
      readonly non2xx: number
      readonly "2xx": number
      readonly statusCodeStats: Record<string, { readonly count: number }>
      /** seconds */
      readonly duration: number
    }
    interface Instance extends EventEmitter, PromiseLike<Result> {
      on(event: "response", listener: (client: Client, statusCode: number, bytes: number, responseTimeMs: number) => void): this
      on(event: string, listener: (...args: Array<any>) => void): this
      stop(): void
    }
  }
  function autocannon(options: autocannon.Options): autocannon.Instance
  export = autocannon
}

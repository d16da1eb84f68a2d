/**
 * The Promise adapter's requests: Prisma-style lazy promises (a model or raw
 * call sends nothing until awaited), the fluent relation API on them, and the
 * batch `$transaction([…])` built from them.
 */
import type { QueryOptions } from "../DatabaseService.js"
import { ONE_CALL } from "@prisma-resilience/kernel/recording"

/** One Prisma call on a client or a transaction client. */
export type Call<A = unknown> = (target: any) => PromiseLike<A>

/** How a request reaches the database: `Database.query` for `f` on the layer's client. */
export type Send = <B>(f: (client: any) => PromiseLike<B>, options: QueryOptions) => Promise<B>

/**
 * A Prisma-style promise: the request starts on the first `then`, so a call
 * that is never awaited sends nothing and cannot reject unobserved. `call`
 * runs on whatever client it is given: the layer's (through `map`, the
 * client's `$extends` chain) or a batch transaction's.
 */
export class LazyRequest<A> implements PromiseLike<A> {
  get [Symbol.toStringTag]() {
    return "PrismaPromise" as const
  }
  #started: Promise<A> | undefined
  constructor(
    readonly send: Send,
    readonly call: Call<A>,
    readonly options: QueryOptions,
    readonly map: ((client: any) => any) | undefined
  ) {}
  #start(): Promise<A> {
    const map = this.map
    const call = this.call
    return this.#started ??= this.send(map === undefined ? call : (client) => call(map(client)), this.options)
  }
  then<R1 = A, R2 = never>(
    onfulfilled?: ((value: A) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null
  ): Promise<R1 | R2> {
    return this.#start().then(onfulfilled, onrejected)
  }
  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<A | R> {
    return this.then(undefined, onrejected)
  }
  finally(onfinally?: (() => void) | null): Promise<A> {
    return this.#start().finally(onfinally)
  }
}

// Prisma's fluent relation API exists on the calls that return one record.
const fluentMethods = new Set([
  "findUnique",
  "findUniqueOrThrow",
  "findFirst",
  "findFirstOrThrow",
  "create",
  "update",
  "upsert",
  "delete"
])

/** Whether calls of `method` get the fluent relation API (`findUnique(…).posts()`). */
export const isFluent = (method: string): boolean => fluentMethods.has(method)

/**
 * `request` with the fluent relation API: `request.posts(args)` is one new
 * request, one Prisma call (`findUnique(…).posts(args)`) of the same kind, so
 * it is retried exactly as the call it extends.
 */
export const fluent = <A>(request: LazyRequest<A>): LazyRequest<A> =>
  new Proxy(request, {
    get(target, key, receiver) {
      if (typeof key !== "string" || key in target) {
        const value = Reflect.get(target, key, target)
        return typeof value === "function" ? value.bind(target) : value
      }
      void receiver
      return (...args: Array<unknown>) => {
        const call = target.call
        return fluent(new LazyRequest(target.send, (client) => (call(client) as any)[key](...args), target.options, target.map))
      }
    }
  })

/**
 * The one transaction a batch `$transaction([…])` is: its calls in order on
 * the transaction's client, and whether all of them are reads (a batch of
 * reads may run again after any failure; one with a write only when the
 * layer knows it was rolled back).
 */
export const batchOf = (
  requests: ReadonlyArray<unknown>
): { readonly run: (tx: any) => Promise<Array<unknown>>; readonly reads: boolean } => {
  const calls: Array<Call> = []
  let reads = true
  for (const request of requests) {
    if (!(request instanceof LazyRequest)) {
      // A raw client's promise would already be bound to that client, outside the layer.
      throw new TypeError("$transaction([…]) takes calls made on this client (db.model.method(…), db.$queryRaw`…`)")
    }
    calls.push(request.call)
    if ((request.options as Record<symbol, unknown>)[ONE_CALL] !== "read") reads = false
  }
  return {
    reads,
    run: async (tx) => {
      const results: Array<unknown> = []
      for (const call of calls) results.push(await call(tx))
      return results
    }
  }
}

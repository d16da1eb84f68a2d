/**
 * Hot-path helpers of `Database.query`: awaiting a Prisma promise with a
 * timeout on one timer (no fiber per call), and naming the operation a query
 * function performs.
 */
import { Effect } from "effect"
import { classify } from "../Classify.js"
import { type DatabaseError, type OperationKind, TimeoutError } from "../Errors.js"

/**
 * Awaits `promise` for at most `timeoutMs`. A late settlement after the timeout
 * is observed and dropped, so it can never become an unhandled rejection.
 */
export const awaitWithTimeout = <A>(
  promise: PromiseLike<A>,
  timeoutMs: number,
  operation: string,
  attempt: number
): Effect.Effect<A, DatabaseError> =>
  Effect.async<A, DatabaseError>((resume) => {
    let settled = false
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      resume(Effect.fail(
        new TimeoutError({
          operation,
          attempt,
          safety: "ambiguous",
          code: "ATTEMPT_TIMEOUT",
          message: `attempt timed out after ${timeoutMs} ms`,
          cause: undefined
        })
      ))
    }, timeoutMs)
    promise.then(
      (value) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(Effect.succeed(value))
      },
      (error: unknown) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resume(Effect.fail(classify(error, { operation, attempt })))
      }
    )
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
    })
  })

/**
 * Runs `f` against a view of `client` that records the first model method it
 * touches (`purchaseOrder.findUnique`) or client method (`$queryRaw`).
 */
export const callRecordingOperation = <C, A>(
  client: C,
  f: (client: C) => A
): { readonly result: A; readonly operation: string | undefined } => {
  let operation: string | undefined
  const record = (name: string) => {
    if (operation === undefined) operation = name
  }
  const target = client as unknown as Record<PropertyKey, unknown>
  const view = new Proxy(target, {
    get(_, key) {
      const value = target[key]
      if (typeof key !== "string") return value
      if (typeof value === "function") {
        record(key)
        return (value as (...args: Array<unknown>) => unknown).bind(target)
      }
      if (typeof value === "object" && value !== null && !key.startsWith("$")) {
        const model = value as Record<PropertyKey, unknown>
        return new Proxy(model, {
          get(_, method) {
            const member = model[method]
            if (typeof method === "string" && typeof member === "function") {
              record(`${key}.${method}`)
              return (member as (...args: Array<unknown>) => unknown).bind(model)
            }
            return member
          }
        })
      }
      return value
    }
  })
  const result = f(view as unknown as C)
  return { result, operation }
}

const readMethods = /\.(find\w*|count|aggregate|groupBy)$|^\$queryRaw(Unsafe)?$|^\$queryRawTyped$/

/**
 * Reads are retried after ambiguous errors; anything else is treated as a
 * write, which is not, unless the caller declares it idempotent.
 */
export const inferKind = (operation: string): OperationKind => (readMethods.test(operation) ? "read" : "write")

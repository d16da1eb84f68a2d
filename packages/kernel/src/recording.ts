/**
 * The operation recorder: what one attempt's query function does on the
 * client decides what a retry may do. It needs no Effect, so every binding
 * (the Effect library, the Promise adapter) records attempts the same way.
 *
 * @since 0.2.0
 */
import { kindOfCall } from "./safety.js"

/**
 * What one attempt's query function did on the client: its first call names
 * the operation, its most dangerous call decides what a retry may do (a read
 * followed by a write is a write), and once the attempt has failed or timed
 * out it is fenced: a call made after that (an async query function still
 * running after its attempt was given up) throws and sends nothing, so an
 * abandoned attempt cannot write next to its retry.
 *
 * @since 0.2.0
 */
export interface Recording {
  /** the first call's name (`purchaseOrder.findUnique`, `$queryRaw`); undefined before any call */
  operation: string | undefined
  /** the most dangerous call so far; undefined before any call that sends something */
  kind: "read" | "write" | undefined
  /** how many calls the attempt made on the client */
  calls: number
  /** set once the attempt has failed or timed out: every later call throws */
  fenced: boolean
}

/** The message of the error a fenced call throws. */
const FENCED_MESSAGE = "its attempt had already failed or timed out, so the call was not sent"

/**
 * An empty recording, for one attempt.
 *
 * @since 0.2.0
 */
export const newRecording = (): Recording => ({ operation: undefined, kind: undefined, calls: 0, fenced: false })

/**
 * Set on the options of a query function that makes exactly one call, of
 * this kind, named by `operation` (the Promise adapter's model calls and
 * `$queryRaw`): it needs no recording view, and its one call is made before
 * the attempt can settle, so there is nothing to fence.
 *
 * @since 0.2.0
 */
export const ONE_CALL: unique symbol = Symbol("prisma-resilience/one-call")

/**
 * The kind `options` declare with `ONE_CALL`, if they do.
 *
 * @since 0.2.0
 */
export const oneCallKind = (options: object | undefined): "read" | "write" | undefined =>
  (options as { [ONE_CALL]?: "read" | "write" } | undefined)?.[ONE_CALL]

const note = (recording: Recording, name: string, args: ReadonlyArray<unknown>) => {
  if (recording.fenced) throw new Error(`${name}: ${FENCED_MESSAGE}`)
  recording.operation ??= name
  recording.calls++
  const kind = kindOfCall(name, args)
  if (kind === "write" || (kind === "read" && recording.kind === undefined)) recording.kind = kind
}

const modelView = (key: string, model: Record<string, unknown>, recording: Recording) =>
  new Proxy(model, {
    get(_, method) {
      // Prisma builds its model methods anew on every read: read once.
      const member = model[method as string]
      if (typeof method !== "string" || typeof member !== "function") return member
      const name = `${key}.${method}`
      return (...args: Array<unknown>) => {
        note(recording, name, args)
        return (member as (...args: Array<unknown>) => unknown).apply(model, args)
      }
    }
  })

/**
 * Runs `f` on a view of `client` that writes every call into `recording`.
 * One view per attempt: an async query function keeps its view after its
 * first await, so calls can only be told apart by the view they come through.
 * Set `recording.fenced` when the attempt is given up: a later call through
 * the view then throws without reaching the client.
 *
 * @example
 * ```ts
 * import { newRecording, recordAttempt } from "@prisma-resilience/kernel"
 *
 * const recording = newRecording()
 * await recordAttempt(prisma, async (db) => {
 *   await db.purchaseOrder.findUnique({ where: { id: 1 } })
 *   return db.purchaseOrder.update({ where: { id: 1 }, data: { status: "sent" } })
 * }, recording)
 * recording // { operation: "purchaseOrder.findUnique", kind: "write", calls: 2, fenced: false }
 * ```
 *
 * @since 0.2.0
 */
export const recordAttempt = <C, A>(client: C, f: (client: C) => A, recording: Recording): A => {
  const target = client as unknown as Record<string, unknown>
  const view = new Proxy(target, {
    get(_, key) {
      const value = target[key as string]
      if (typeof key !== "string") return value
      if (typeof value === "function") {
        return (...args: Array<unknown>) => {
          note(recording, key, args)
          return (value as (...args: Array<unknown>) => unknown).apply(target, args)
        }
      }
      if (typeof value === "object" && value !== null && !key.startsWith("$")) {
        return modelView(key, value as Record<string, unknown>, recording)
      }
      return value
    }
  }) as unknown as C
  return f(view)
}

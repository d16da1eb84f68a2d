/**
 * The part of `@effect/vitest` these tests use, on Effect 4 and the vitest
 * the repository runs: `@effect/vitest` 4 needs vitest 5, and version 0.x is
 * Effect 3's. `it.effect` runs on the `TestClock`; `it.live` on the real
 * clock; `layer(l)(name, (it) => …)` builds `l` once for a block of tests
 * and closes it after them.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { afterAll, beforeAll, describe, expect, expectTypeOf, it as vitestIt } from "vitest"

export { describe, expect, expectTypeOf }

// R is whatever the block provides; the tests' own types are checked where they are written.
type Body = () => Effect.Effect<unknown, unknown, any>

const runWith = (context: Context.Context<any>, testClock: boolean) => (body: Body) => () => {
  const effect = Effect.scoped(Effect.provide(body(), context))
  return Effect.runPromise((testClock ? Effect.provide(effect, TestClock.layer()) : effect) as Effect.Effect<unknown, unknown>)
}

type Timeout = number | { readonly timeout?: number }

interface EffectIt {
  readonly effect: (name: string, body: Body, timeout?: Timeout) => void
  readonly live: (name: string, body: Body, timeout?: Timeout) => void
}

const ms = (timeout: Timeout | undefined) => typeof timeout === "object" ? timeout.timeout : timeout

const itWith = (context: () => Context.Context<any>, testClock: boolean): EffectIt => ({
  effect: (name, body, timeout) => vitestIt(name, () => runWith(context(), testClock)(body)(), ms(timeout)),
  live: (name, body, timeout) => vitestIt(name, () => runWith(context(), false)(body)(), ms(timeout))
})

/** vitest's `it`, with `it.effect` (TestClock) and `it.live` (real clock). */
export const it: typeof vitestIt & EffectIt = Object.assign(
  ((...args: Parameters<typeof vitestIt>) => vitestIt(...args)) as typeof vitestIt,
  vitestIt,
  itWith(() => Context.empty() as Context.Context<any>, true)
)

/** A block of tests sharing one build of `layer`, closed after the block. */
export const layer = <R, E>(
  layer: Layer.Layer<R, E>,
  options?: { readonly excludeTestServices?: boolean; readonly timeout?: number }
) =>
(name: string, f: (it: EffectIt) => void) =>
  describe(name, () => {
    let scope: Scope.Closeable | undefined
    let context: Context.Context<R> | undefined
    beforeAll(async () => {
      scope = Effect.runSync(Scope.make())
      context = await Effect.runPromise(Layer.buildWithScope(layer, scope) as Effect.Effect<Context.Context<R>, E>)
    }, options?.timeout ?? 120_000)
    afterAll(async () => {
      if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
    })
    f(itWith(() => context!, options?.excludeTestServices !== true))
  })

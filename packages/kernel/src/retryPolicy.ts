/**
 * The retry policy's numbers: its settings, how many attempts they allow, the
 * worst case they add up to (the start-up check), and the timeout left for an
 * attempt before a deadline. No Effect import: shared by every binding.
 *
 * @since 0.1.0
 */

/**
 * The retry policy's settings (`DB_RETRY_DELAYS_MS`, `DB_ATTEMPT_TIMEOUT_MS`,
 * `DB_REQUEST_BUDGET_MS`, `DB_WARMUP_WAIT_MS`, `DB_RETRY_JITTER`).
 *
 * @since 0.1.0
 */
export interface RetryConfig {
  /** delay before each retry, in ms; its length is the number of retries */
  readonly delaysMs: ReadonlyArray<number>
  /** the longest one attempt may take before it fails with `TimeoutError` */
  readonly attemptTimeoutMs: number
  /** the whole request's budget: no attempt starts and no retry sleeps past it */
  readonly requestBudgetMs: number
  /** how long a request may wait for warm-up before its first attempt */
  readonly warmupWaitMs: number
  /** ±20 % random jitter on each delay; off by default so timings are exact */
  readonly jitter: boolean
}

/**
 * The defaults: two retries after 500 and 1000 ms, 2 s per attempt, 9 s per
 * request, 1.5 s of waiting for warm-up, no jitter: a worst case of exactly 9 s.
 *
 * @since 0.1.0
 */
export const defaults: RetryConfig = {
  delaysMs: [500, 1000],
  attemptTimeoutMs: 2000,
  requestBudgetMs: 9000,
  warmupWaitMs: 1500,
  jitter: false
}

/**
 * The first attempt and one per delay: `delaysMs.length + 1`.
 *
 * @since 0.1.0
 */
export const maxAttempts = (config: RetryConfig): number => config.delaysMs.length + 1

/**
 * The longest a request can take under this policy, and how that adds up:
 * the warm-up wait, every attempt timing out, and every delay (stretched by
 * 20 % with jitter). The start-up check compares it with the request budget.
 *
 * @example
 * ```ts
 * import { RetryPolicy } from "@prisma-resilience/kernel"
 *
 * RetryPolicy.worstCase(RetryPolicy.defaults)
 * // { totalMs: 9000,
 * //   arithmetic: "1500 ms warm-up wait + 3 attempts × 2000 ms + delays 500 + 1000 ms = 9000 ms" }
 * ```
 *
 * @since 0.1.0
 */
export const worstCase = (config: RetryConfig): { readonly totalMs: number; readonly arithmetic: string } => {
  const attempts = maxAttempts(config)
  // Jitter stretches a delay by up to 20 %.
  const stretch = config.jitter ? 1.2 : 1
  const delays = config.delaysMs.map((d) => Math.ceil(d * stretch))
  const delaySum = delays.reduce((a, b) => a + b, 0)
  const totalMs = config.warmupWaitMs + attempts * config.attemptTimeoutMs + delaySum
  const delayText = delays.length === 0 ? "0 ms delays" : `delays ${delays.join(" + ")} ms${config.jitter ? " (with jitter)" : ""}`
  const arithmetic =
    `${config.warmupWaitMs} ms warm-up wait + ${attempts} attempts × ${config.attemptTimeoutMs} ms + ${delayText} = ${totalMs} ms`
  return { totalMs, arithmetic }
}

/**
 * The one deadline rule: the request's own deadline when it has one (set by
 * `withBudget`, or by a wait for warm-up that began the request), else `now`
 * plus the budget.
 *
 * @since 0.1.0
 */
export const deadlineOf = (current: number | undefined, config: Pick<RetryConfig, "requestBudgetMs">, now: number): number =>
  current ?? now + config.requestBudgetMs

/**
 * The timeout of an attempt starting at `now`: the attempt timeout, but never
 * past the deadline (and at least 1 ms).
 *
 * @since 0.1.0
 */
export const attemptTimeout = (config: RetryConfig, deadlineMs: number, now: number): number =>
  Math.max(1, Math.min(config.attemptTimeoutMs, deadlineMs - now))


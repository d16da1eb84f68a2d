/**
 * The retry policy's numbers: its settings, how many attempts they allow, the
 * worst case they add up to (the start-up check), and the timeout left for an
 * attempt before a deadline. No Effect import: shared by every binding.
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

export const defaults: RetryConfig = {
  delaysMs: [500, 1000],
  attemptTimeoutMs: 2000,
  requestBudgetMs: 9000,
  warmupWaitMs: 1500,
  jitter: false
}

export const maxAttempts = (config: RetryConfig): number => config.delaysMs.length + 1

/** The longest a request can take under this policy, and how that adds up. */
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
 */
export const deadlineOf = (current: number | undefined, config: Pick<RetryConfig, "requestBudgetMs">, now: number): number =>
  current ?? now + config.requestBudgetMs

/** the timeout of an attempt starting at `now`: never past the deadline */
export const attemptTimeout = (config: RetryConfig, deadlineMs: number, now: number): number =>
  Math.max(1, Math.min(config.attemptTimeoutMs, deadlineMs - now))


/**
 * Effect's fiber metrics, under the names `/metrics` has always had
 * (`effect_fiber_started`, `effect_fiber_active`, `effect_fiber_successes`,
 * `effect_fiber_failures`). Effect 3 recorded them for every fiber by itself;
 * Effect 4 records fiber metrics only when a `Metric.FiberRuntimeMetrics`
 * service is provided, and its own implementation names them
 * `child_fibers_*`, which would rename the series dashboards and alerts read.
 * This is the service, with Effect 3's metric definitions. Effect 3's
 * `effect_fiber_lifetimes` histogram is not kept: Effect 4's hook gets the
 * fiber's context and exit, not when it started.
 */
import { Exit, Layer, Metric } from "effect"

const started = Metric.counter("effect_fiber_started", { incremental: true })
// Not incremental: it goes down as fibers end (exported as a gauge, as in Effect 3).
const active = Metric.counter("effect_fiber_active")
const successes = Metric.counter("effect_fiber_successes", { incremental: true })
const failures = Metric.counter("effect_fiber_failures", { incremental: true })

const service: Metric.FiberRuntimeMetricsService = {
  recordFiberStart(context) {
    started.updateUnsafe(1, context)
    active.updateUnsafe(1, context)
  },
  recordFiberEnd(context, exit) {
    active.updateUnsafe(-1, context)
    if (Exit.isSuccess(exit)) successes.updateUnsafe(1, context)
    else failures.updateUnsafe(1, context)
  }
}

/** Records the fiber metrics of every fiber started where it is provided. */
export const layer: Layer.Layer<never> = Layer.succeed(Metric.FiberRuntimeMetrics, service)

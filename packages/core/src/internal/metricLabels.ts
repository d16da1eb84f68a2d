/**
 * The label sets of the query path's metrics, built once per operation,
 * error, node… and reused: building `MetricLabel`s per query would cost more
 * than the rest of the success path. Operation and node names are
 * code-defined, so the caches are bounded by the program.
 */
import * as Context from "effect/Context"
import * as Metric from "effect/Metric"
import type { Labels } from "../Metrics.js"

// One context per label set, holding its attributes: recording on the base
// metric with it addresses the same series as `Metric.withAttributes` does,
// without the wrapper's `Context.add` (a new context) on every update.
const contexts = new WeakMap<Labels, Context.Context<never>>()

/** Records `value` on `metric`'s series for `labels`, outside any fiber and without allocating. */
export const record = <In>(metric: Metric.Metric<In, any>, value: In, labels: Labels): void => {
  let context = contexts.get(labels)
  if (context === undefined) {
    context = Context.add(Context.empty(), Metric.CurrentMetricAttributes, Object.fromEntries(labels))
    contexts.set(labels, context)
  }
  metric.updateUnsafe(value, context)
}

const labelCache = new Map<string, Labels>()
const cached = (key: string, make: () => Labels) => {
  let labels = labelCache.get(key)
  if (labels === undefined) {
    // Operation names are code-defined, so the cache is bounded by the program.
    labels = make()
    labelCache.set(key, labels)
  }
  return labels
}

// Keyed by the operation first, so that the query path looks labels up
// without building a key string per query.
const byOperation = new Map<string, {
  readonly operation: Labels
  readonly attempts: Map<string, Labels>
}>()
const labelsOf = (operation: string) => {
  let labels = byOperation.get(operation)
  if (labels === undefined) {
    // Operation names are code-defined, so the cache is bounded by the program.
    labels = { operation: [["operation", operation]], attempts: new Map() }
    byOperation.set(operation, labels)
  }
  return labels
}

export const operationLabels = (operation: string) => labelsOf(operation).operation

export const attemptLabels = (operation: string, attempt: number, outcome: string) => {
  const attempts = labelsOf(operation).attempts
  const key = attempt === 1 ? outcome : `${attempt}\0${outcome}`
  let labels = attempts.get(key)
  if (labels === undefined) {
    labels = [
      ["operation", operation],
      ["attempt", String(attempt)],
      ["outcome", outcome]
    ]
    attempts.set(key, labels)
  }
  return labels
}

export const retryLabels = (operation: string, error: string) =>
  cached(`r\0${operation}\0${error}`, () => [
    ["operation", operation],
    ["error", error]
  ])

export const cancellationLabels = (operation: string, code: string) =>
  cached(`c\0${operation}\0${code}`, () => [
    ["operation", operation],
    ["code", code]
  ])

export const verificationLabels = (operation: string, outcome: string) =>
  cached(`v\0${operation}\0${outcome}`, () => [
    ["operation", operation],
    ["outcome", outcome]
  ])

export const nodeLabels = (database: string, node: string) =>
  cached(`n\0${database}\0${node}`, () => [["database", database], ["node", node]])

export const nodeResultLabels = (database: string, node: string, result: string) =>
  cached(`nr\0${database}\0${node}\0${result}`, () => [
    ["database", database],
    ["node", node],
    ["result", result]
  ])

export const routingLabels = (database: string, target: string, reason: string) =>
  cached(`rr\0${database}\0${target}\0${reason}`, () => [
    ["database", database],
    ["target", target],
    ["reason", reason]
  ])

export const discoveryLabels = (database: string, result: string) =>
  cached(`wd\0${database}\0${result}`, () => [["database", database], ["result", result]])

export const resultLabels = (result: string) => cached(`h\0${result}`, () => [["result", result]])

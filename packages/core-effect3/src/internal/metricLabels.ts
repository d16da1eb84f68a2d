/**
 * The label sets of the query path's metrics, built once per operation,
 * error, node… and reused: building `MetricLabel`s per query would cost more
 * than the rest of the success path. Operation and node names are
 * code-defined, so the caches are bounded by the program.
 */
import { MetricLabel } from "effect"

const labelCache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const cached = (key: string, make: () => ReadonlyArray<MetricLabel.MetricLabel>) => {
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
  readonly operation: ReadonlyArray<MetricLabel.MetricLabel>
  readonly attempts: Map<string, ReadonlyArray<MetricLabel.MetricLabel>>
}>()
const labelsOf = (operation: string) => {
  let labels = byOperation.get(operation)
  if (labels === undefined) {
    // Operation names are code-defined, so the cache is bounded by the program.
    labels = { operation: [MetricLabel.make("operation", operation)], attempts: new Map() }
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
      MetricLabel.make("operation", operation),
      MetricLabel.make("attempt", String(attempt)),
      MetricLabel.make("outcome", outcome)
    ]
    attempts.set(key, labels)
  }
  return labels
}

export const retryLabels = (operation: string, error: string) =>
  cached(`r\0${operation}\0${error}`, () => [
    MetricLabel.make("operation", operation),
    MetricLabel.make("error", error)
  ])

export const cancellationLabels = (operation: string, code: string) =>
  cached(`c\0${operation}\0${code}`, () => [
    MetricLabel.make("operation", operation),
    MetricLabel.make("code", code)
  ])

export const verificationLabels = (operation: string, outcome: string) =>
  cached(`v\0${operation}\0${outcome}`, () => [
    MetricLabel.make("operation", operation),
    MetricLabel.make("outcome", outcome)
  ])

export const nodeLabels = (database: string, node: string) =>
  cached(`n\0${database}\0${node}`, () => [MetricLabel.make("database", database), MetricLabel.make("node", node)])

export const nodeResultLabels = (database: string, node: string, result: string) =>
  cached(`nr\0${database}\0${node}\0${result}`, () => [
    MetricLabel.make("database", database),
    MetricLabel.make("node", node),
    MetricLabel.make("result", result)
  ])

export const routingLabels = (database: string, target: string, reason: string) =>
  cached(`rr\0${database}\0${target}\0${reason}`, () => [
    MetricLabel.make("database", database),
    MetricLabel.make("target", target),
    MetricLabel.make("reason", reason)
  ])

export const discoveryLabels = (database: string, result: string) =>
  cached(`wd\0${database}\0${result}`, () => [MetricLabel.make("database", database), MetricLabel.make("result", result)])

export const resultLabels = (result: string) => cached(`h\0${result}`, () => [MetricLabel.make("result", result)])

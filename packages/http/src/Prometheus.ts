/**
 * `/metrics` in the Prometheus text format, from maintained parts: the Effect
 * metric registry (where core records everything) is read by
 * `@effect/opentelemetry`'s metric producer and written out by OpenTelemetry's
 * Prometheus serializer. Nothing here formats exposition text by hand.
 *
 * @since 0.1.0
 */
import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Context, Effect, Layer } from "effect"
import * as FiberMetrics from "./internal/fiberMetrics.js"

/** @since 0.1.0 */
export interface PrometheusService {
  /** Every metric of the process, in the text exposition format. */
  readonly scrape: Effect.Effect<string>
}

/** @since 0.1.0 */
export class Prometheus extends Context.Service<Prometheus, PrometheusService>()("@prisma-resilience/http/Prometheus") {}

/** @since 0.1.0 */
export const make = Effect.gen(function*() {
  // The exporter is used as a pull reader only: it would otherwise open an
  // HTTP server of its own on port 9464.
  const reader = new PrometheusExporter({ preventServerStart: true })
  const producer = yield* OtelMetrics.makeProducer()
  yield* OtelMetrics.registerProducer(producer, () => reader)
  // Effect metrics carry no instrumentation scope worth a label on every series.
  const serializer = new PrometheusSerializer(undefined, false, undefined, false, true)
  const scrape = Effect.promise(() => reader.collect()).pipe(
    Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
  )
  return Prometheus.of({ scrape })
})

/**
 * The exporter, and Effect's fiber metrics recorded for every fiber started
 * under this layer (Effect 4 records none unless asked: `internal/fiberMetrics.ts`).
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<Prometheus> = Layer.merge(
  Layer.effect(Prometheus, make).pipe(Layer.provide(Resource.layer({ serviceName: "prisma-resilience-http" }))),
  FiberMetrics.layer
)

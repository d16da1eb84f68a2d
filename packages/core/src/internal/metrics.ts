/**
 * The metrics as the implementation uses them: the public `Metrics` and the
 * cached label sets of `metricLabels`, under one name.
 */
export * from "../Metrics.js"
export * from "./metricLabels.js"

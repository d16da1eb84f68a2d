// The whole suite for one binding, area by area.
import type { Binding } from "../binding.js"
import { describeBreaker } from "./breaker.js"
import { describeBudget } from "./budget.js"
import { describeCommitVerification } from "./commitVerification.js"
import { describeHealth } from "./health.js"
import { describeRetrySafety } from "./retrySafety.js"
import { describeTopology } from "./topology.js"
import { describeWarmup } from "./warmup.js"

export const describeBehaviour = (binding: Binding) => {
  describeRetrySafety(binding)
  describeBudget(binding)
  describeBreaker(binding)
  describeHealth(binding)
  describeWarmup(binding)
  describeCommitVerification(binding)
  describeTopology(binding)
}

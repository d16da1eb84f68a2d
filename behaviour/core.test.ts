// The behaviour suite against core on Effect 4 (Database.layer in a
// ManagedRuntime). The binding lives in packages/core so that it resolves
// that package's `effect` (4.x); this directory's is Effect 3.
import { coreBinding } from "../packages/core/test/behaviour/binding.js"
import { describeBehaviour } from "./suite/index.js"

describeBehaviour(coreBinding)

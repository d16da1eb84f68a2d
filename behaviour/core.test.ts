// The behaviour suite against core on Effect 3 (Database.layer in a ManagedRuntime).
import { coreBinding } from "./bindings/core.js"
import { describeBehaviour } from "./suite/index.js"

describeBehaviour(coreBinding)

// The behaviour suite against core-effect3 (Effect 3) (Database.layer in a ManagedRuntime).
import { coreBinding } from "./bindings/coreEffect3.js"
import { describeBehaviour } from "./suite/index.js"

describeBehaviour(coreBinding)

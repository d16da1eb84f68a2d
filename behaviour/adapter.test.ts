// The behaviour suite against the Promise adapter of core (Effect 4), createResilientPrisma.
import { adapterBinding } from "./bindings/adapter.js"
import { describeBehaviour } from "./suite/index.js"

describeBehaviour(adapterBinding)

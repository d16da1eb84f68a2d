// The behaviour suite against the Promise adapter, createResilientPrisma.
import { adapterBinding } from "./bindings/adapter.js"
import { describeBehaviour } from "./suite/index.js"

describeBehaviour(adapterBinding)

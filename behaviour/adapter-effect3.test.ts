// The behaviour suite against core-effect3's Promise adapter, createResilientPrisma.
import { adapterEffect3Binding } from "./bindings/adapter.js"
import { describeBehaviour } from "./suite/index.js"

describeBehaviour(adapterEffect3Binding)

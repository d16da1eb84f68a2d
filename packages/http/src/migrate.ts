/**
 * `npm run db:migrate`: applies pending migrations and exits, for deployments
 * that migrate as a step of their own. Uses DATABASE_URL, or else the
 * embedded PostgreSQL in DATA_DIR (started and stopped again).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { databaseUrl } from "./internal/database.js"
import { teardown } from "./internal/teardown.js"
import { migrate } from "./Readiness.js"

NodeRuntime.runMain(Effect.scoped(Effect.flatMap(databaseUrl, migrate)), { teardown })

// Started by Patroni.test.ts: starts a Patroni cluster, says which processes
// it runs, and exits without destroying it, as a crashed test run would, so
// that the test can check that the exit hook left nothing behind.
import { startPatroniCluster } from "../src/index.js"
import { processesOf } from "./PatroniTestSupport.js"

const cluster = await startPatroniCluster({ synchronousMode: false })
console.log(JSON.stringify({ dir: cluster.dir, pids: processesOf(cluster.dir) }))
process.exit(0)

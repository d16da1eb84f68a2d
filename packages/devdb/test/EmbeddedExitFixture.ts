// Started by devdb.test.ts: starts a throw-away and a persistent cluster, says
// where they run, and exits without destroying them, as a crashed test run
// would, so that the test can check what the exit hook left behind.
import fsp from "node:fs/promises"
import path from "node:path"
import pg from "pg"
import { startCluster } from "../src/index.js"

const parent = process.argv[2]
if (parent === undefined) throw new Error("usage: EmbeddedExitFixture.ts <directory>")

const ephemeral = await startCluster({ dataDir: await fsp.mkdtemp(path.join(parent, "ephemeral-")) })
const persistent = await startCluster({ dataDir: path.join(parent, "persistent"), persistent: true })
const client = new pg.Client({
  host: persistent.host,
  port: persistent.port,
  user: persistent.user,
  password: persistent.password,
  database: persistent.database,
  connectionTimeoutMillis: 5_000
})
await client.connect()
await client.query("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1)")
await client.end()

console.log(
  JSON.stringify({
    ephemeral: { pid: ephemeral.pid, dataDir: ephemeral.dataDir },
    persistent: { pid: persistent.pid, dataDir: persistent.dataDir }
  })
)
process.exit(0)

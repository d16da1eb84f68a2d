// A plain streaming replica of a devdb cluster whose replication link runs
// through a loopback TcpProxy, so that a test can cut or stall the link
// (the primary and the replica both stay up and answer queries) and restore it.
//
// The embedded binaries ship no pg_basebackup, so the replica is a cold copy:
// the primary is stopped cleanly, its data directory copied, and both started,
// the copy as a hot standby streaming from a physical replication slot (the
// primary keeps the WAL a cut-off replica needs to catch up).
import fsp from "node:fs/promises"
import path from "node:path"
import pg from "pg"
import { type Cluster, type ClusterOptions, createCluster } from "./EmbeddedPostgres.js"
import { startProxy, type TcpProxy } from "./TcpProxy.js"

export interface StreamingReplicaOptions {
  /** server log lines of the replica; default: discarded */
  readonly log?: (line: string) => void
  /** extra `-c name=value` settings of the replica, as for a cluster */
  readonly settings?: ClusterOptions["settings"]
}

export interface StreamingReplica {
  /** the hot standby: `url` connects to it directly, not through the proxy */
  readonly cluster: Cluster
  /** the replication link (the standby's `primary_conninfo` points at it) */
  readonly link: TcpProxy
  /** the slot on the primary the standby streams from */
  readonly slot: string
  /** cuts the link: resets the open replication connection and refuses new ones */
  cut(): void
  /** stalls the link: connections stay open, no byte is forwarded either way, nothing is closed */
  stall(): void
  /** forwards again and accepts connections: the standby reconnects (after a cut) or resumes (after a stall) */
  restore(): void
  /** the standby's replay position and whether its WAL receiver is streaming */
  status(): Promise<{ readonly replayLsn: string | null; readonly receiver: string | null }>
  /** stops and removes the standby, closes the link and drops the slot (when the primary runs) */
  destroy(): Promise<void>
}

let replicas = 0

/** Runs `f` on a new connection to `url` (5 s to connect), closed afterwards; its 'error' events are ignored. */
export const withConnection = async <A>(url: string, f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  client.on("error", () => {})
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end().catch(() => {})
  }
}

// Files that belong to one running server, not to the data.
const notCopied = new Set(["postmaster.pid", "postmaster.opts"])

/** copies `from` to `to`, each file owned like its original (root copies files the postgres user must own) */
const copyOwned = async (from: string, to: string): Promise<void> => {
  const stat = await fsp.lstat(from)
  if (stat.isDirectory()) {
    await fsp.mkdir(to, { mode: stat.mode & 0o777 })
    for (const entry of await fsp.readdir(from)) {
      if (!notCopied.has(entry)) await copyOwned(path.join(from, entry), path.join(to, entry))
    }
  } else if (stat.isSymbolicLink()) {
    await fsp.symlink(await fsp.readlink(from), to)
  } else {
    await fsp.copyFile(from, to)
    await fsp.chmod(to, stat.mode & 0o777)
  }
  const copied = await fsp.lstat(to)
  if (copied.uid !== stat.uid || copied.gid !== stat.gid) await fsp.lchown(to, stat.uid, stat.gid)
}

/** writes `text` to `file` owned and permitted like `like` */
const writeLike = async (file: string, text: string, like: string) => {
  const stat = await fsp.stat(like)
  await fsp.writeFile(file, text, { mode: 0o600 })
  await fsp.chown(file, stat.uid, stat.gid)
}

/**
 * Builds a hot standby of `primary` (a devdb cluster, running or not) next to
 * its data directory and starts both. The standby streams through a TcpProxy
 * that the returned object cuts, stalls and restores. The primary is stopped
 * (fast) for the copy and started again: do this before the test's clients
 * connect. `destroy()` the replica before the primary.
 */
export const startStreamingReplica = async (
  primary: Cluster,
  options: StreamingReplicaOptions = {}
): Promise<StreamingReplica> => {
  const n = ++replicas
  const slot = `devdb_replica_${process.pid}_${n}`
  if (!primary.running) await primary.start()
  await withConnection(primary.url, (client) => client.query("SELECT pg_create_physical_replication_slot($1)", [slot]))
  const link = await startProxy({ host: primary.host, port: primary.port })
  const dataDir = `${primary.dataDir}-standby-${n}`
  let cluster: Cluster | undefined
  try {
    await primary.stop("fast")
    await fsp.rm(dataDir, { recursive: true, force: true })
    await copyOwned(primary.dataDir, dataDir)
    const password = new URL(primary.url).password
    // The password goes to the standby's own 0600 configuration file, as
    // `pg_basebackup -R` writes it, never to a command line or a log.
    const conninfo = [
      `host=${link.host}`,
      `port=${link.port}`,
      `user=${primary.user}`,
      `password=${decodeURIComponent(password)}`,
      `dbname=${primary.database}`,
      `application_name=devdb_replica_${n}`,
      "connect_timeout=2"
    ].join(" ")
    const auto = path.join(dataDir, "postgresql.auto.conf")
    const existing = await fsp.readFile(auto, "utf8").catch(() => "")
    await writeLike(
      auto,
      `${existing}\nprimary_conninfo = '${conninfo.replace(/'/g, "''")}'\nprimary_slot_name = '${slot}'\n`,
      dataDir
    )
    await writeLike(path.join(dataDir, "standby.signal"), "", dataDir)
    await primary.start()
    cluster = await createCluster({
      dataDir,
      settings: { hot_standby: "on", ...options.settings },
      ...(options.log === undefined ? {} : { log: options.log })
    })
    await cluster.start()
  } catch (error) {
    await cluster?.destroy().catch(() => {})
    await fsp.rm(dataDir, { recursive: true, force: true })
    await link.close()
    if (!primary.running) await primary.start().catch(() => {})
    await dropSlot(primary, slot)
    throw error
  }
  const standby = cluster

  return {
    cluster: standby,
    link,
    slot,
    cut: () => {
      link.refuse(true)
      link.cutAll()
    },
    stall: () => link.stall(true),
    restore: () => {
      link.refuse(false)
      link.stall(false)
    },
    status: () =>
      withConnection(standby.url, async (client) => {
        const { rows } = await client.query<{ replay_lsn: string | null; receiver: string | null }>(
          "SELECT pg_last_wal_replay_lsn()::text AS replay_lsn, (SELECT status FROM pg_stat_wal_receiver) AS receiver"
        )
        return { replayLsn: rows[0]!.replay_lsn, receiver: rows[0]!.receiver }
      }),
    destroy: async () => {
      await standby.destroy()
      await link.close()
      await dropSlot(primary, slot)
    }
  }
}

// The walsender of a standby that just stopped may hold the slot a moment longer.
const dropSlot = async (primary: Cluster, slot: string) => {
  for (let attempt = 0; attempt < 20 && primary.running; attempt++) {
    const dropped = await withConnection(primary.url, (client) =>
      client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [slot])
    ).then(() => true, () => false)
    if (dropped) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

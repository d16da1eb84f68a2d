/**
 * The answer to an ambiguous commit: `txid_status` of the id a transaction
 * recorded before COMMIT (the kernel's `serverDeadline` records it), asked
 * until the server says committed or aborted.
 */
import type { BeforeCommit, RawQueryable } from "@prisma-resilience/kernel/serverDeadline"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { DatabaseError } from "../Errors.js"
import type { Timer } from "@prisma-resilience/kernel/timer"
import { awaitWithTimeout } from "./attempt.js"


/** What `txid_status` said of the transaction. */
export type CommitStatus = "committed" | "aborted" | "unknown"

const POLL_MS = 50

/**
 * Asks `txid_status` on a connection of `client`'s pool (the failed one is
 * gone from it) until it says committed or aborted, or `timeoutMs` ran out.
 * `in progress` is asked again: the old backend may not have seen its
 * connection close, or may still be writing the commit. An answer from another
 * server (a restart or a failover, where the id may have been given to another
 * transaction) is `unknown`.
 */
export const commitStatus = (
  timer: Timer,
  client: RawQueryable,
  seen: BeforeCommit<unknown>,
  timeoutMs: number,
  operation: string,
  attempt: number
): Effect.Effect<CommitStatus> =>
  Effect.suspend(() => {
    const until = timer.now() + timeoutMs
    const ask: Effect.Effect<CommitStatus> = Effect.suspend(() => {
      const left = until - timer.now()
      if (left <= 0) return Effect.succeed("unknown" as const)
      return awaitWithTimeout(
        timer,
        client.$queryRaw`SELECT txid_status(${seen.txid}::bigint) AS status,
          extract(epoch FROM pg_postmaster_start_time())::text AS server`,
        left,
        operation,
        attempt
      ).pipe(
        Effect.map((rows): CommitStatus | "again" => {
          const [row] = rows as Array<{ status: string | null; server: string }>
          if (row === undefined || row.server !== seen.server) return "unknown"
          if (row.status === "committed" || row.status === "aborted") return row.status
          // null: the id is too old to tell
          return row.status === null ? "unknown" : "again"
        }),
        // A broken pooled connection, or a server still restarting: ask again.
        // An error of a working server (an id from its future) will not change.
        Effect.catch((error: DatabaseError) => Effect.succeed(error.safety === "never" ? "unknown" as const : "again" as const)),
        Effect.flatMap((status) =>
          status !== "again"
            ? Effect.succeed(status)
            : until - timer.now() > POLL_MS
            ? Effect.andThen(Effect.sleep(Duration.millis(POLL_MS)), ask)
            : Effect.succeed("unknown" as const)
        )
      )
    })
    return ask
  })

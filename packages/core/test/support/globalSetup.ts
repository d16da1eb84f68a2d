// One throw-away PostgreSQL cluster for the run's integration tests that do
// not break the database. Tests that stop, restart or kill a server own theirs.
import { type Cluster, startCluster } from "@prisma-resilience/devdb"
import { createSchema } from "../../../core-effect3/test/fixture/client.js"
import fsp from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
  }
}

let cluster: Cluster | undefined

export async function setup(project: TestProject) {
  const started = performance.now()
  cluster = await startCluster({ dataDir: await fsp.mkdtemp(path.join(os.tmpdir(), "core-it-")) })
  await createSchema(cluster.url)
  console.info(`[core] embedded PostgreSQL on 127.0.0.1:${cluster.port} ready in ${Math.round(performance.now() - started)} ms`)
  project.provide("databaseUrl", cluster.url)
}

export async function teardown() {
  await cluster?.destroy()
}

export {
  createCluster,
  freePort,
  startCluster,
  type Cluster,
  type ClusterOptions,
  type ShutdownMode
} from "./EmbeddedPostgres.js"
export { startProxy, type TcpProxy } from "./TcpProxy.js"
export { findPrimary, missingPatroniTools, startPatroniCluster, type PatroniCluster, type PatroniClusterOptions, type PatroniMember, type PatroniNode } from "./Patroni.js"
export { startStreamingReplica, type StreamingReplica, type StreamingReplicaOptions, withConnection } from "./StreamingReplica.js"

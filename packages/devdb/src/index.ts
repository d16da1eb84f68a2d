export {
  createCluster,
  freePort,
  startCluster,
  type Cluster,
  type ClusterOptions,
  type ShutdownMode
} from "./EmbeddedPostgres.js"
export { startProxy, type TcpProxy } from "./TcpProxy.js"

export { heapGrowth } from './alloc.js'
export type {
  EtcdAuthAdmin,
  EtcdCredentials,
  EtcdGrant,
  EtcdPermission,
} from './auth.js'
export { EtcdBinaryNotFoundError, etcdBinary, etcdctlBinary } from './binaries.js'
export { type CertificatePair, makeCertificates, type TestCertificates } from './certs.js'
export { type EtcdCluster, type EtcdMember, type StartEtcdOptions, startEtcd } from './etcd.js'
export { type EtcdctlAccess, type EtcdctlOptions, etcdctl, spawnEtcdctl, spawnLines } from './etcdctl.js'
export { eventually } from './eventually.js'
export {
  type EtcdGateway,
  type EtcdGatewayOptions,
  etcdGateway,
  type GatewayHoldOptions,
  type GatewayKeyValue,
  type GatewayLeaderKey,
  type GatewayLock,
} from './gateway.js'
export { buildGoProgram, type GoProgram } from './go.js'
export { type LoadLoop, type LoadStats, runLoad } from './load.js'
export {
  type FaultProxy,
  type FaultProxyOptions,
  type ProxiedCluster,
  type ProxyMode,
  proxyCluster,
  startProxy,
} from './proxy.js'
export { type SharedEtcd, sharedEtcd, uniquePrefix } from './shared.js'

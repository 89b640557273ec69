export { EtcdBinaryNotFoundError, etcdBinary, etcdctlBinary } from './binaries.js'
export { type EtcdCluster, type EtcdMember, type StartEtcdOptions, startEtcd } from './etcd.js'
export { type EtcdctlOptions, etcdctl, spawnEtcdctl } from './etcdctl.js'
export { type SharedEtcd, sharedEtcd, uniquePrefix } from './shared.js'

export { type EtcdDiscovery, type EtcdDiscoveryOptions, etcdDiscovery } from './discovery.js'

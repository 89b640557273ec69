export { type EtcdDiscoveryOptions, etcdDiscovery, etcdDiscovery as default } from './plugin.js'

// The `etcd` dialect: etcd's own naming format (client/v3/naming/endpoints), etcdkit's default, unchanged.

import { checkKeys } from '../../validate.js'
import { decodeEndpoint, encodeEndpoint } from '../instance.js'
import type { DialectCodec } from './dialect.js'

/**
 * Key `{registryPrefix}{service}/{address}`, value `{"Op":0,"Addr":…,"Metadata":…}`: exactly what etcdkit
 * wrote before dialects existed (the same functions write and read it), on the kit's lease.
 */
export const etcdDialect: DialectCodec<undefined, undefined> = {
  name: 'etcd',
  // etcd's Go client leaves the lease to its caller; etcdkit's session lease defaults to 10 s
  lease: { frameworkTtl: 10, frameworkRevokes: false },
  distinct: 'one address is registered once per service',
  carries: { weight: true, zone: true, version: true, metadata: 'json', tls: true },
  writeOptions(raw) {
    checkKeys(raw, ['name'], 'etcd dialect options')
    return undefined
  },
  readOptions(raw) {
    checkKeys(raw, ['name'], 'etcd dialect options')
    return undefined
  },
  keyHasLease: () => false,
  key: (instance, _o, _lease, ctx) => `${ctx.registryPrefix}${instance.service}/${instance.address}`,
  encode: (instance) => encodeEndpoint(instance.address, instance.metadata),
  prefix: (service, _o, ctx) => `${ctx.registryPrefix}${service}/`,
  decode(_service, _key, value) {
    const d = decodeEndpoint(value)
    if (d.kind === 'invalid') return { kind: 'unreadable', reason: d.reason }
    if (d.kind === 'delete') return d
    return { kind: 'instance', address: d.address, metadata: d.metadata }
  },
  catalog: (ctx) => ({
    root: ctx.registryPrefix,
    serviceOf(rest) {
      const slash = rest.indexOf('/')
      return slash > 0 ? rest.slice(0, slash) : undefined
    },
  }),
}

// The `kitex` dialect: kitex-contrib/registry-etcd (etcdRegistry, etcdResolver); `hertz` shares its value shape.

import { show } from '../../errors.js'
import { checkKeys } from '../../validate.js'
import {
  type DialectCodec,
  type DialectName,
  metadataFromStrings,
  metadataToStrings,
  optionalString,
  optionalStringMap,
  parseObject,
  readAddress,
} from './dialect.js'
import { goJson, goMapOrNull } from './go-json.js'

export interface CloudwegoWrite {
  readonly prefix: string
  /** Extra tags, over those made from the metadata. */
  readonly tags: ReadonlyMap<string, string>
}

export interface CloudwegoRead {
  readonly prefix: string
}

/** Kitex' and Hertz' `registry.DefaultWeight`, which their resolvers also put in place of a weight <= 0. */
const DEFAULT_WEIGHT = 10

/**
 * The shape both CloudWeGo registries share: key `{prefix}/{service}/{host:port}`, value the JSON of
 * `instanceInfo{Network, Address, Weight, Tags}` (`{"network":"tcp","address","weight","tags":{}}`).
 * Kitex marshals with encoding/json (sorted keys, `<>&` escaped), Hertz with sonic (no escaping, map order
 * not fixed): readers compare decoded values. Both write on a lease of their own (60 s by default,
 * `*_ETCD_REGISTRY_LEASE_TTL`) and delete the key on Deregister.
 */
export function cloudwegoDialect(
  name: DialectName,
  defaultPrefix: string,
  prefixOption: boolean,
  escapeHtml: boolean,
): DialectCodec<CloudwegoWrite, CloudwegoRead> {
  const what = `${name} dialect options`
  const checkPrefix = (raw: Record<string, unknown>) =>
    (prefixOption
      ? optionalString(raw, 'prefix', what, (s) =>
          s.endsWith('/') ? 'a prefix must not end with "/"' : undefined,
        )
      : undefined) ?? defaultPrefix
  const prefixKeys = prefixOption ? ['prefix'] : []
  return {
    name,
    lease: { frameworkTtl: 60, frameworkRevokes: false },
    distinct: 'one address is registered once per service',
    carries: { weight: true, zone: true, version: true, metadata: 'strings', tls: false },
    writeOptions(raw) {
      checkKeys(raw, ['name', 'tags', ...prefixKeys], what)
      return { prefix: checkPrefix(raw), tags: optionalStringMap(raw, 'tags', what) }
    },
    readOptions(raw) {
      checkKeys(raw, ['name', ...prefixKeys], what)
      return { prefix: checkPrefix(raw) }
    },
    keyHasLease: () => false,
    // IPv6 in brackets, as Hertz writes it (net.JoinHostPort); Kitex writes "%s:%d", which Go cannot dial
    key: (instance, o) => `${o.prefix}/${instance.service}/${instance.address}`,
    encode(instance, o) {
      const tags = metadataToStrings(instance.metadata, ['weight'])
      for (const [k, v] of o.tags) tags.set(k, v)
      return goJson(
        {
          network: 'tcp',
          address: instance.address,
          // no weight given: the frameworks' default, so a Node instance gets the share a Go one gets
          weight: instance.metadata.weight ?? DEFAULT_WEIGHT,
          tags: goMapOrNull(tags),
        },
        escapeHtml,
      )
    },
    prefix: (service, o) => `${o.prefix}/${service}/`,
    decode(_service, _key, value) {
      const info = parseObject(value)
      if (typeof info === 'string') return { kind: 'unreadable', reason: info }
      const network = info.network ?? 'tcp'
      if (network !== 'tcp' && network !== 'tcp4' && network !== 'tcp6')
        return { kind: 'unreadable', reason: `network ${show(network)} is not tcp` }
      const address = readAddress(info.address)
      if (address === undefined)
        return { kind: 'unreadable', reason: `no "host:port" address: ${show(info.address)}` }
      const metadata = metadataFromStrings(info.tags)
      if (metadata === undefined) return { kind: 'unreadable', reason: '"tags" is not an object of strings' }
      const w = info.weight ?? 0
      if (typeof w !== 'number' || !Number.isInteger(w))
        return { kind: 'unreadable', reason: `weight ${show(w)} is not an integer` }
      // the frameworks' resolvers turn a weight <= 0 into the default: a reader here does the same
      // (and one above the bounds goes on to the reader's one bound check, which skips and reports it)
      metadata.weight = w <= 0 ? DEFAULT_WEIGHT : w
      return { kind: 'instance', address, metadata }
    },
    catalog: () => ({
      root: `${defaultPrefix}/`,
      serviceOf(rest) {
        const slash = rest.indexOf('/')
        return slash > 0 ? rest.slice(0, slash) : undefined
      },
    }),
  }
}

/** kitex-contrib/registry-etcd: prefix `kitex/registry-etcd` (option `WithPrefix`), encoding/json. */
export const kitexDialect = cloudwegoDialect('kitex', 'kitex/registry-etcd', true, true)

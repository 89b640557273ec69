// The `kratos` dialect: go-kratos/kratos contrib/registry/etcd (Registry), registry.ServiceInstance as JSON.

import { InvalidArgumentError, show } from '../../errors.js'
import { checkKeys } from '../../validate.js'
import type { InstanceMetadata } from '../instance.js'
import {
  type DialectCodec,
  metadataFromStrings,
  metadataToStrings,
  optionalString,
  parseObject,
  readAddress,
} from './dialect.js'
import { goJson, goMapOrNull } from './go-json.js'

/** The endpoint schemes Kratos servers write (`endpoint.Scheme("grpc"|"http", isSecure)`). */
export type KratosScheme = 'grpc' | 'grpcs' | 'http' | 'https'
const SCHEMES: readonly KratosScheme[] = ['grpc', 'grpcs', 'http', 'https']

export interface KratosWrite {
  readonly namespace: string
  readonly id: string
  readonly schemes: readonly KratosScheme[]
}

export interface KratosRead {
  readonly namespace: string
  /**
   * The endpoint schemes a reader uses, preferred first (Kratos' gRPC and HTTP clients each pick one);
   * `undefined`: the instance's first endpoint.
   */
  readonly schemes: readonly KratosScheme[] | undefined
}

/** What each purpose reads when no scheme is given: what that client can call. */
const FOR_PURPOSE = { any: undefined, http: ['http', 'https'], grpc: ['grpc', 'grpcs'] } as const

const WHAT = 'kratos dialect options'

/**
 * Key `{namespace}/{name}/{id}` (registry.go `registerKey`, namespace `/microservices` by default), value
 * `json.Marshal(ServiceInstance)`: `{"id","name","version","metadata":{string:string},"endpoints":[url]}`
 * (registry/registry.go). Kratos' reader (`GetService`, watcher.go `getInstance`) reads the prefix
 * `{namespace}/{name}` (no trailing slash), skips values whose `name` differs, and fails the whole service
 * on one value it cannot unmarshal: so everything written here is a valid ServiceInstance, metadata values
 * are strings, and `weight` is written as text (selector/default_node.go parses `metadata["weight"]`).
 */
export const kratosDialect: DialectCodec<KratosWrite, KratosRead> = {
  name: 'kratos',
  // registry.go New: ttl 15 s; Deregister deletes the key and closes the lease client (no revoke)
  lease: { frameworkTtl: 15, frameworkRevokes: false },
  distinct: 'give it a Kratos `id` of its own',
  carries: { weight: true, zone: true, version: true, metadata: 'strings', tls: true },
  writeOptions(raw, instance) {
    checkKeys(raw, ['name', 'namespace', 'id', 'schemes'], WHAT)
    const id =
      optionalString(raw, 'id', WHAT, (s) => (s.includes('/') ? 'an id must not contain "/"' : undefined)) ??
      instance.address
    let schemes: readonly KratosScheme[]
    if (raw.schemes === undefined) {
      // one address: the scheme its protocol names; plain HTTP when none is given (what ServiceClient calls)
      const p = instance.protocol ?? instance.metadata.protocol
      schemes = [p === 'grpc' ? 'grpc' : p === 'https' ? 'https' : 'http']
    } else {
      const s = raw.schemes
      if (
        !Array.isArray(s) ||
        s.length === 0 ||
        !s.every((x) => SCHEMES.includes(x)) ||
        new Set(s).size !== s.length
      )
        throw new InvalidArgumentError(
          `invalid ${WHAT}.schemes ${show(s)}: expected distinct values from "grpc", "grpcs", "http", "https"`,
        )
      schemes = s as KratosScheme[]
    }
    return { namespace: checkNamespace(raw), id, schemes }
  },
  readOptions(raw, _service, purpose) {
    checkKeys(raw, ['name', 'namespace', 'scheme'], WHAT)
    const scheme = raw.scheme
    if (scheme !== undefined && !SCHEMES.includes(scheme as KratosScheme))
      throw new InvalidArgumentError(
        `invalid ${WHAT}.scheme ${show(scheme)}: expected "grpc", "grpcs", "http" or "https"`,
      )
    return {
      namespace: checkNamespace(raw),
      schemes: scheme === undefined ? FOR_PURPOSE[purpose] : [scheme as KratosScheme],
    }
  },
  keyHasLease: () => false,
  key: (instance, o) => `${o.namespace}/${instance.service}/${o.id}`,
  encode(instance, o) {
    const { version } = instance.metadata
    return goJson({
      id: o.id,
      name: instance.service,
      version: version ?? '',
      metadata: goMapOrNull(metadataToStrings(instance.metadata, ['version', 'protocol'])),
      endpoints: o.schemes.map((s) => `${s}://${instance.address}`),
    })
  },
  // etcdkit reads "{namespace}/{name}/": with the slash, "orders-v2" is not read as a candidate for "orders"
  prefix: (service, o) => `${o.namespace}/${service}/`,
  decode(service, _key, value, o) {
    const si = parseObject(value)
    if (typeof si === 'string') return { kind: 'unreadable', reason: si }
    if (typeof si.name !== 'string')
      return { kind: 'unreadable', reason: 'no "name" string (not a Kratos ServiceInstance)' }
    if (si.name !== service) return { kind: 'other', reason: `the instance of ${show(si.name)}` }
    if (si.version !== undefined && si.version !== null && typeof si.version !== 'string')
      return { kind: 'unreadable', reason: '"version" is not a string' }
    const metadata: InstanceMetadata | undefined = metadataFromStrings(si.metadata)
    if (metadata === undefined)
      return {
        kind: 'unreadable',
        reason: '"metadata" is not an object of strings (Kratos readers fail on it too)',
      }
    const endpoints = si.endpoints ?? []
    if (!Array.isArray(endpoints) || !endpoints.every((e) => typeof e === 'string'))
      return { kind: 'unreadable', reason: '"endpoints" is not a list of strings' }
    if (endpoints.length === 0) return { kind: 'other', reason: 'an instance without endpoints' }
    let chosen: { scheme: KratosScheme; address: string; rank: number } | undefined
    for (const e of endpoints as string[]) {
      const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(e)
      const scheme = m?.[1]?.toLowerCase() as KratosScheme | undefined
      const address = readAddress(m?.[2])
      if (scheme === undefined || address === undefined || !SCHEMES.includes(scheme)) continue
      const rank = o.schemes === undefined ? 0 : o.schemes.indexOf(scheme)
      if (rank < 0 || (chosen !== undefined && chosen.rank <= rank)) continue
      chosen = { scheme, address, rank }
    }
    if (chosen === undefined) {
      if (o.schemes !== undefined)
        return { kind: 'other', reason: `no ${o.schemes.join('/')} endpoint in ${show(endpoints)}` }
      return { kind: 'unreadable', reason: `no usable endpoint in ${show(endpoints)}` }
    }
    if (typeof si.version === 'string' && si.version !== '') metadata.version = si.version
    metadata.protocol = chosen.scheme === 'grpcs' ? 'grpc' : chosen.scheme
    metadata.scheme = chosen.scheme
    return { kind: 'instance', address: chosen.address, metadata }
  },
  catalog: () => ({
    root: `${DEFAULT_NAMESPACE}/`,
    serviceOf(rest) {
      const slash = rest.indexOf('/')
      return slash > 0 ? rest.slice(0, slash) : undefined
    },
  }),
}

const DEFAULT_NAMESPACE = '/microservices'

function checkNamespace(raw: Record<string, unknown>): string {
  return (
    optionalString(raw, 'namespace', WHAT, (s) =>
      s.endsWith('/') ? 'a namespace must not end with "/"' : undefined,
    ) ?? DEFAULT_NAMESPACE
  )
}

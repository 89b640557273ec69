// The `go-micro` dialect: micro/plugins v4/registry/etcd and go-micro v5 registry/etcd (the same format).

import { show } from '../../errors.js'
import { checkKeys } from '../../validate.js'
import {
  type DialectCodec,
  type DialectInstance,
  metadataFromStrings,
  metadataToStrings,
  optionalString,
  parseObject,
  readAddress,
} from './dialect.js'
import { goJson, goMapOrNull } from './go-json.js'

export interface GoMicroWrite {
  readonly id: string
}

const ROOT = '/micro/registry/'
const WHAT = 'go-micro dialect options'

/**
 * Key `/micro/registry/{service}/{node id}` (etcd.go `nodePath`: `path.Join` with "/" in either part turned
 * into "-"), value `json.Marshal(registry.Service)` holding one node:
 * `{"name","version","metadata","endpoints","nodes":[{"metadata","id","address"}]}` (registry/registry.go;
 * Node's fields are declared metadata, id, address, and that is the order Go writes them in). The node's
 * metadata carries `protocol` (go-micro's servers write `grpc`, `mucp` or `http`; its clients choose their
 * codec by it). go-micro re-puts the key on a lease of `RegisterTTL` (90 s) every `RegisterInterval` (30 s).
 */
export const goMicroDialect: DialectCodec<GoMicroWrite, undefined> = {
  name: 'go-micro',
  lease: { frameworkTtl: 90, frameworkRevokes: false },
  distinct: 'give it a go-micro node `id` of its own',
  carries: { weight: true, zone: true, version: true, metadata: 'strings', tls: false },
  writeOptions(raw, instance) {
    checkKeys(raw, ['name', 'id'], WHAT)
    // "/" would be turned into "-" by go-micro, "." and ".." cleaned away by path.Join: refuse them
    const id =
      optionalString(raw, 'id', WHAT, (s) =>
        s.includes('/') || s === '.' || s === '..'
          ? 'a node id must not contain "/" or be "." or ".."'
          : undefined,
      ) ?? `${instance.service}-${instance.address}`
    return { id }
  },
  readOptions(raw) {
    checkKeys(raw, ['name'], WHAT)
    return undefined
  },
  keyHasLease: () => false,
  key: (instance, o) => `${ROOT}${instance.service}/${o.id}`,
  encode(instance, o) {
    return goJson({
      name: instance.service,
      // go-micro's DefaultVersion
      version: instance.metadata.version ?? 'latest',
      metadata: null,
      endpoints: null,
      nodes: [
        {
          metadata: goMapOrNull(nodeMetadata(instance)),
          id: o.id,
          address: instance.address,
        },
      ],
    })
  },
  prefix: (service) => `${ROOT}${service}/`,
  decode(_service, _key, value) {
    const s = parseObject(value)
    if (typeof s === 'string') return { kind: 'unreadable', reason: s }
    const nodes = s.nodes
    if (!Array.isArray(nodes) || nodes.length !== 1)
      return {
        kind: 'unreadable',
        reason: `expected "nodes" with one node (go-micro writes one per key), found ${show(nodes)}`,
      }
    const node: unknown = nodes[0]
    if (typeof node !== 'object' || node === null)
      return { kind: 'unreadable', reason: 'the node is not an object' }
    const { address: rawAddress, metadata: nodeMeta } = node as Record<string, unknown>
    const address = readAddress(rawAddress)
    if (address === undefined)
      return { kind: 'unreadable', reason: `node address ${show(rawAddress)} is not "host:port"` }
    const serviceMeta = metadataFromStrings(s.metadata)
    const metadata = metadataFromStrings(nodeMeta)
    if (serviceMeta === undefined || metadata === undefined)
      return { kind: 'unreadable', reason: '"metadata" is not an object of strings' }
    if (typeof s.version === 'string' && s.version !== '') metadata.version = s.version
    return { kind: 'instance', address, metadata: { ...serviceMeta, ...metadata } }
  },
  catalog: () => ({
    root: ROOT,
    serviceOf(rest) {
      const slash = rest.indexOf('/')
      return slash > 0 ? rest.slice(0, slash) : undefined
    },
  }),
}

/** The node's metadata: the instance's as strings, and `protocol` (go-micro's clients pick their codec by it). */
function nodeMetadata(instance: DialectInstance): Map<string, string> {
  const map = metadataToStrings(instance.metadata, ['version'])
  const protocol = instance.protocol ?? instance.metadata.protocol
  if (protocol !== undefined) map.set('protocol', protocol)
  return map
}

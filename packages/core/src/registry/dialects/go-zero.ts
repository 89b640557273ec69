// The `go-zero` dialect: zeromicro/go-zero core/discov (Publisher, Subscriber), as zrpc servers and clients use it.

import { InvalidArgumentError, show } from '../../errors.js'
import { checkKeys } from '../../validate.js'
import { type DialectCodec, optionalString, readAddress } from './dialect.js'

export interface GoZeroWrite {
  /** go-zero's `Etcd.Key` (goctl writes `{service}.rpc`). */
  readonly key: string
  /** go-zero's `Etcd.ID` (decimal int64 > 0), or `undefined`: the lease ID goes in the key. */
  readonly id: string | undefined
}

export interface GoZeroRead {
  readonly key: string
}

const MAX_INT64 = 2n ** 63n - 1n

/**
 * Key `{Key}/{lease ID in decimal}` (clients.go `makeEtcdKey`, `%s%c%d`; publisher.go puts it with the lease
 * it names), or `{Key}/{ID}` when an ID is set; value the bare `host:port`. go-zero's reader (subscriber.go
 * through internal/registry.go) reads every key under `{Key}/` and takes each distinct value as an address,
 * whatever the key's last part: so writing on the kit's lease, with the kit's lease ID in the key, is read
 * exactly as go-zero's own publisher is, and a new lease gives a new key (the old one goes with its lease).
 */
export const goZeroDialect: DialectCodec<GoZeroWrite, GoZeroRead> = {
  name: 'go-zero',
  // clients.go: TimeToLive = 10; publisher.go revokes its lease on Stop
  lease: { frameworkTtl: 10, frameworkRevokes: true },
  distinct: "give each registration under one go-zero Key its own `id` (go-zero's Etcd.ID)",
  carries: { weight: false, zone: false, version: false, metadata: 'none', tls: false },
  writeOptions(raw, instance) {
    checkKeys(raw, ['name', 'key', 'id'], 'go-zero dialect options')
    return { key: checkKey(raw, instance.service), id: checkId(raw.id) }
  },
  readOptions(raw, service) {
    checkKeys(raw, ['name', 'key'], 'go-zero dialect options')
    return { key: checkKey(raw, service) }
  },
  keyHasLease: (o) => o.id === undefined,
  key: (_instance, o, leaseId) => `${o.key}/${o.id ?? BigInt(leaseId).toString()}`,
  encode: (instance) => instance.address,
  prefix: (_service, o) => `${o.key}/`,
  decode(_service, _key, value) {
    const address = readAddress(value)
    if (address === undefined)
      return { kind: 'unreadable', reason: `${show(value)} is not the bare "host:port" go-zero writes` }
    return { kind: 'instance', address, metadata: {} }
  },
  // a go-zero Key is free text: there is no root that holds every go-zero service
  catalog: () => undefined,
}

function checkKey(raw: Record<string, unknown>, service: string): string {
  // a Key ending in "/" would put the instance under "{Key}//…", which go-zero's reader of "{Key}/" reads
  // but etcdkit's other readers would take for an empty service
  return (
    optionalString(raw, 'key', 'go-zero dialect options', (k) =>
      k.endsWith('/') ? 'a Key must not end with "/"' : undefined,
    ) ?? `${service}.rpc`
  )
}

function checkId(id: unknown): string | undefined {
  if (id === undefined) return undefined
  let n: bigint | undefined
  if (typeof id === 'bigint') n = id
  else if (typeof id === 'number' && Number.isSafeInteger(id)) n = BigInt(id)
  else if (typeof id === 'string' && /^[1-9]\d{0,18}$/.test(id)) n = BigInt(id)
  if (n === undefined || n <= 0n || n > MAX_INT64)
    throw new InvalidArgumentError(
      `invalid go-zero dialect options.id ${show(id)}: expected an integer from 1 to 2^63-1 (go-zero's Etcd.ID)`,
    )
  return n.toString()
}

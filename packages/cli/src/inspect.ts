// What the CLI and the console show, read through the kit: services with their processes and lease TTLs,
// lock and election queues, and the config tree.
import type { CatalogInstance, EtcdKit } from '@etcdkit/core'

/** The session record a kit writes on its own lease (`{namespace}sessions/{leaseHex}`). */
export interface SessionRecord {
  service?: string
  address?: string
  hostname?: string
  pid?: number
  version?: string
  startedAt?: string
}

/** Who is behind a lease: its session record, or `unknown` (etcdctl, Go, or a kit without records). */
export interface Owner {
  lease: string
  /** Seconds until etcd expires the lease; `-1` when it is gone, `undefined` when it could not be read. */
  ttl: number | undefined
  process: SessionRecord | 'unknown'
}

export interface ServiceInstanceRow extends Owner {
  service: string
  address: string
  key: string
  metadata: Record<string, unknown>
  weight: number
  modRevision: string
}

/** One contender of a lock or an election: the holder (or leader) first, then waiters in queue order. */
export interface Contender extends Owner {
  key: string
  /** The create revision: the queue order, and the holder's fencing token. */
  createRevision: string
  /** An election candidate's proposal; `""` for a lock. */
  value: string
}

export interface Queue {
  /** The lock or election name (kit-relative). */
  name: string
  kind: 'lock' | 'election'
  contenders: Contender[]
}

export const SESSIONS_PREFIX = 'sessions/'

/** Resolves the owners of `leases` (hex): session records and TTLs, one read each, in parallel. */
export async function owners(kit: EtcdKit, leases: Iterable<string>): Promise<Map<string, Owner>> {
  const out = new Map<string, Owner>()
  const unique = [...new Set(leases)].filter((l) => l !== '')
  const records = await readSessionRecords(kit)
  await Promise.all(
    unique.map(async (lease) => {
      let ttl: number | undefined
      try {
        const res = await kit.client.leaseClient.leaseTimeToLive({ ID: BigInt(`0x${lease}`).toString() })
        ttl = Number(res.TTL)
      } catch {
        ttl = undefined
      }
      out.set(lease, { lease, ttl, process: records.get(lease) ?? 'unknown' })
    }),
  )
  return out
}

async function readSessionRecords(kit: EtcdKit): Promise<Map<string, SessionRecord>> {
  const { kvs } = await kit.keyspace.list(SESSIONS_PREFIX)
  const out = new Map<string, SessionRecord>()
  for (const kv of kvs) {
    const lease = kit.keyspace.name(kv.key).slice(SESSIONS_PREFIX.length)
    try {
      const record = JSON.parse(kv.value.toString()) as unknown
      if (record && typeof record === 'object' && !Array.isArray(record))
        out.set(lease, record as SessionRecord)
    } catch {
      // not a record we can read: its owner stays unknown
    }
  }
  return out
}

/** Every instance of every service (or of `service`), with the process and TTL of its lease. */
export async function serviceRows(
  kit: EtcdKit,
  services: ReadonlyMap<string, readonly CatalogInstance[]>,
  service?: string,
): Promise<ServiceInstanceRow[]> {
  const instances = [...services.values()]
    .flat()
    .filter((i) => service === undefined || i.service === service)
  const who = await owners(
    kit,
    instances.map((i) => i.lease),
  )
  return instances.map((i) => ({
    service: i.service,
    address: i.address,
    key: i.key,
    metadata: { ...i.metadata },
    weight: i.weight,
    modRevision: i.modRevision,
    ...(who.get(i.lease) ?? { lease: i.lease, ttl: undefined, process: 'unknown' as const }),
  }))
}

/**
 * The lock and election queues under `prefix`: keys `{name}/{leaseHex}` attached to that very lease (the
 * format of etcd's Go `Mutex` and `Election`, `etcdctl lock` and `elect`). A lock's keys have empty values, an
 * election's hold the proposals. The registry, config and session records are not queues and are skipped.
 */
export async function queues(kit: EtcdKit, prefix = ''): Promise<Queue[]> {
  const { kvs } = await kit.keyspace.list(prefix)
  // `_etcdkit/`: etcdkit's own bookkeeping (drain requests), never a lock or an election
  const skip = [kit.registryPrefix, kit.configPrefix, SESSIONS_PREFIX, '_etcdkit/']
  const byName = new Map<
    string,
    { kind: Queue['kind']; contenders: Omit<Contender, keyof Owner>[]; leases: string[] }
  >()
  for (const kv of kvs) {
    if (kv.lease === '0') continue
    const key = kit.keyspace.name(kv.key)
    if (skip.some((p) => key.startsWith(p))) continue
    const slash = key.lastIndexOf('/')
    const lease = BigInt(kv.lease).toString(16)
    if (slash <= 0 || key.slice(slash + 1) !== lease) continue
    const name = key.slice(0, slash)
    const value = kv.value.toString()
    let queue = byName.get(name)
    if (!queue) {
      queue = { kind: value === '' ? 'lock' : 'election', contenders: [], leases: [] }
      byName.set(name, queue)
    }
    if (value !== '') queue.kind = 'election'
    queue.contenders.push({ key, createRevision: kv.create_revision, value })
    queue.leases.push(lease)
  }
  const who = await owners(
    kit,
    [...byName.values()].flatMap((q) => q.leases),
  )
  return [...byName.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, q]) => ({
      name,
      kind: q.kind,
      contenders: q.contenders
        .map((c, i) => ({
          ...c,
          ...(who.get(q.leases[i]!) ?? { lease: q.leases[i]!, ttl: undefined, process: 'unknown' as const }),
        }))
        .sort((a, b) => (BigInt(a.createRevision) < BigInt(b.createRevision) ? -1 : 1)),
    }))
}

/** A config key as stored: shared `{configPrefix}{key}`, or a service's override `{configPrefix}{service}/{key}`. */
export interface ConfigEntry {
  key: string
  value: string
  /** The service whose override this is, when the key starts with a registered service's name. */
  service?: string
}

/** The config tree: every key under the config prefix with its text, overrides attributed to known services. */
export function configEntries(
  snapshot: ReadonlyMap<string, string>,
  services: Iterable<string>,
): ConfigEntry[] {
  const known = [...services]
  return [...snapshot.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => {
      const service = known.find((s) => key.startsWith(`${s}/`))
      return service === undefined ? { key, value } : { key, value, service }
    })
}

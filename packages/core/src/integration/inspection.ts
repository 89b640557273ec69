// What tools (the CLI and its console) may read about a kit's namespace without reaching into the kit:
// ranges, session records, lease owners, lock and election queues, and one watch over the whole namespace.
import type { WatchHandle } from '../etcd/watch.js'
import { type EtcdKit, kitInternals } from '../kit.js'
import { parseSessionRecord, SESSIONS_PREFIX, type SessionRecord } from '../ops/session-record.js'

/** One key-value of a range, its name kit-relative (without the namespace). */
export interface InspectedKey {
  key: string
  value: string
  /** The lease (decimal, `"0"` for none) the key is attached to. */
  lease: string
  createRevision: string
  modRevision: string
}

/** Who is behind a lease: its session record, or `unknown` (etcdctl, Go, or a kit without records). */
export interface Owner {
  /** The lease in hex, as in session record and queue keys. */
  lease: string
  /** Seconds until etcd expires the lease; `-1` when it is gone, `undefined` when it could not be read. */
  ttl: number | undefined
  process: SessionRecord | 'unknown'
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

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Read-only inspection of a kit's namespace, for tools built on etcdkit (`etcdkit` the CLI). Every read
 * goes through the kit's own keyspace (namespace applied, large prefixes paged) and its watch stream.
 */
export class KitInspector {
  readonly #kit: EtcdKit

  constructor(kit: EtcdKit) {
    this.#kit = kit
  }

  /** Every key under `prefix` (kit-relative), read as one consistent snapshot. */
  async list(prefix: string): Promise<InspectedKey[]> {
    const { keyspace } = kitInternals(this.#kit)
    const { kvs } = await keyspace.list(prefix)
    return kvs.map((kv) => ({
      key: keyspace.name(kv.key),
      value: kv.value.toString(),
      lease: kv.lease,
      createRevision: kv.create_revision,
      modRevision: kv.mod_revision,
    }))
  }

  /** The session records of every kit in the namespace, by lease (hex); unreadable records are left out. */
  async sessionRecords(): Promise<Map<string, SessionRecord>> {
    const out = new Map<string, SessionRecord>()
    for (const kv of await this.list(SESSIONS_PREFIX)) {
      const record = parseSessionRecord(kv.value)
      if (record) out.set(kv.key.slice(SESSIONS_PREFIX.length), record)
    }
    return out
  }

  /** Resolves the owners of `leases` (hex): session records and TTLs, one read each, in parallel. */
  async owners(leases: Iterable<string>): Promise<Map<string, Owner>> {
    const out = new Map<string, Owner>()
    const unique = [...new Set(leases)].filter((l) => l !== '')
    const records = await this.sessionRecords()
    await Promise.all(
      unique.map(async (lease) => {
        let ttl: number | undefined
        try {
          const res = await this.#kit.client.leaseClient.leaseTimeToLive({
            ID: BigInt(`0x${lease}`).toString(),
          })
          ttl = Number(res.TTL)
        } catch {
          ttl = undefined
        }
        out.set(lease, { lease, ttl, process: records.get(lease) ?? 'unknown' })
      }),
    )
    return out
  }

  /**
   * The lock and election queues under `prefix`: keys `{name}/{leaseHex}` attached to that very lease (the
   * format of etcd's Go `Mutex` and `Election`, `etcdctl lock` and `elect`). A lock's keys have empty
   * values, an election's hold the proposals. The registry, config and session records are not queues.
   */
  async queues(prefix = ''): Promise<Queue[]> {
    const kit = this.#kit
    const skip = [kit.registryPrefix, kit.configPrefix, SESSIONS_PREFIX]
    const byName = new Map<
      string,
      { kind: Queue['kind']; contenders: Omit<Contender, keyof Owner>[]; leases: string[] }
    >()
    for (const kv of await this.list(prefix)) {
      if (kv.lease === '0') continue
      const key = kv.key
      if (skip.some((p) => key.startsWith(p))) continue
      const slash = key.lastIndexOf('/')
      const lease = BigInt(kv.lease).toString(16)
      if (slash <= 0 || key.slice(slash + 1) !== lease) continue
      const name = key.slice(0, slash)
      let queue = byName.get(name)
      if (!queue) {
        queue = { kind: kv.value === '' ? 'lock' : 'election', contenders: [], leases: [] }
        byName.set(name, queue)
      }
      if (kv.value !== '') queue.kind = 'election'
      queue.contenders.push({ key, createRevision: kv.createRevision, value: kv.value })
      queue.leases.push(lease)
    }
    const who = await this.owners([...byName.values()].flatMap((q) => q.leases))
    return [...byName.entries()]
      .sort(([a], [b]) => compare(a, b))
      .map(([name, q]) => ({
        name,
        kind: q.kind,
        contenders: q.contenders
          .map((c, i) => ({
            ...c,
            ...(who.get(q.leases[i]!) ?? {
              lease: q.leases[i]!,
              ttl: undefined,
              process: 'unknown' as const,
            }),
          }))
          .sort((a, b) => (BigInt(a.createRevision) < BigInt(b.createRevision) ? -1 : 1)),
      }))
  }

  /**
   * Calls `onChange` after any change anywhere in the namespace, with the keys changed (kit-relative; after
   * the watch is reset, when changes may have been missed, with `undefined`), on the kit's shared watch
   * stream. `onStale` / `onCurrent` say when the watch stops and starts being known current (the stream's
   * own staleness bound). `cancel()` stops it.
   */
  watchNamespace(
    onChange: (changes: readonly NamespaceChange[] | undefined) => void,
    freshness: NamespaceFreshnessListener = {},
  ): { cancel(): void } {
    const { keyspace, watchHub } = kitInternals(this.#kit)
    const { key, range_end } = keyspace.range('')
    const handle: WatchHandle = watchHub.watch(
      { key, rangeEnd: range_end, startRevision: 0n },
      {
        onEvents: (events) =>
          onChange(events.map((e) => ({ key: keyspace.name(e.kv.key), deleted: e.type === 'Delete' }))),
        onReset: () => onChange(undefined),
        ...(freshness.onStale ? { onStale: freshness.onStale } : {}),
        ...(freshness.onCurrent ? { onCurrent: freshness.onCurrent } : {}),
      },
    )
    return { cancel: () => handle.cancel() }
  }
}

/** One key changed in the namespace (kit-relative). */
export interface NamespaceChange {
  key: string
  deleted: boolean
}

/** Told when a namespace watch stops (`since`: when its stream was last heard from, ms) and starts being known current. */
export interface NamespaceFreshnessListener {
  onStale?(reason: string, since: number): void
  onCurrent?(): void
}

/** The inspector of `kit`'s namespace. */
export function inspect(kit: EtcdKit): KitInspector {
  return new KitInspector(kit)
}

// Who holds and who waits for a lock or an election: its queue in etcd, each key mapped to its process.
import type { IKeyValue, IRequestOp } from 'etcd3'
import type { Keyspace } from '../etcd/keyspace.js'
import type { Session } from '../etcd/session.js'
import { parseSessionRecord, SESSIONS_PREFIX, type SessionRecord } from '../ops/session-record.js'
import type { LockActivity } from './lock-activity.js'

/** One key in a lock's (or an election's) queue, oldest first. */
export interface QueueEntry {
  /** The key, `{name}/{lease hex}` (kit-relative). */
  readonly key: string
  /** Its lease id in lowercase hex (`0` for a key on no lease). */
  readonly lease: string
  /** Its create revision: the queue order, and the holder's fencing token. */
  readonly createRevision: bigint
  /** 0 for the holder (the leader), 1 for the first waiter, and so on. */
  readonly position: number
  /** `holder` for the first key (the lock holder, the election leader), `waiter` for the others. */
  readonly role: 'holder' | 'waiter'
  /** The key's value: an election candidate's proposal; empty for locks. */
  readonly value: string
  /**
   * The session record of the process behind the lease, or `unknown` when it has none: `etcdctl lock`,
   * `etcdctl elect`, Go's `concurrency` package, or an etcdkit that may not write its record.
   */
  readonly record: SessionRecord | 'unknown'
  /** Whether the key is this kit's own. */
  readonly own: boolean
  /**
   * How long it has held (holder) or waited (waiter), in ms. etcd keeps no timestamps on keys, so this is
   * known only for this kit's own key; `undefined` for everyone else's.
   */
  readonly forMs: number | undefined
}

/** etcd's default `--max-txn-ops` is 128: record reads go in txns of at most this many. */
const READS_PER_TXN = 100

/**
 * Reads the queue under `{name}/` (oldest first, at one revision) and the session records of its
 * leases (one txn per 100 leases, at that same revision).
 */
export async function readQueue(
  ks: Keyspace,
  name: string,
  session: Session,
  activity: LockActivity,
): Promise<QueueEntry[]> {
  const res = await ks.kv.range({ ...ks.range(`${name}/`), sort_order: 'Ascend', sort_target: 'Create' })
  const revision = res.header.revision
  const leaseOf = (kv: IKeyValue) => BigInt(kv.lease).toString(16)
  const hexes = [...new Set(res.kvs.map(leaseOf))].filter((hex) => hex !== '0')
  const records = new Map<string, SessionRecord>()
  for (let i = 0; i < hexes.length; i += READS_PER_TXN) {
    const chunk = hexes.slice(i, i + READS_PER_TXN)
    const success: IRequestOp[] = chunk.map((hex) => ({
      request_range: { key: ks.key(`${SESSIONS_PREFIX}${hex}`), revision },
    }))
    const txn = await ks.kv.txn({ compare: [], success, failure: [] })
    txn.responses.forEach((r, j) => {
      const kv = r.response_range?.kvs[0]
      const record = kv ? parseSessionRecord(kv.value.toString()) : undefined
      if (record) records.set(chunk[j]!, record)
    })
  }
  const ownHex = session.lease?.hex
  return res.kvs.map((kv, position) => {
    const lease = leaseOf(kv)
    const own = lease === ownHex
    return {
      key: ks.name(kv.key),
      lease,
      createRevision: BigInt(kv.create_revision),
      position,
      role: position === 0 ? 'holder' : 'waiter',
      value: kv.value.toString(),
      record: records.get(lease) ?? 'unknown',
      own,
      forMs: own ? activity.ownDuration(name) : undefined,
    }
  })
}

// The values etcd still keeps of one config key, and putting one of them back, guarded.
import type { IKeyValue } from 'etcd3'
import {
  ConfigConflictError,
  ConfigRevisionUnavailableError,
  failureKind,
  InvalidArgumentError,
  show,
} from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import { type ConfigWriter, readWriter, recordedPut, WRITERS_PREFIX, type WriterRecords } from './writer.js'

/** One value a config key held, as etcd still keeps it. */
export interface ConfigRevision {
  /** The key, relative to the namespace (`config/rate-limit`). */
  key: string
  /** The text written. */
  value: string
  /** The revision that wrote it (= `modRevision`): what `rollback(key, revision)` takes. */
  revision: string
  /** etcd's mod_revision of this value (decimal). */
  modRevision: string
  /** etcd's create_revision: where this life of the key began. */
  createRevision: string
  /** etcd's version: 1 for the put that created the key, +1 per put since. */
  version: string
  /** Who wrote it, when it was written through etcdkit (a writer record in the same txn); else `undefined`. */
  writer: ConfigWriter | undefined
  /** When it was written (the writer's clock), when known. */
  time: Date | undefined
}

/** What a rollback did. */
export interface ConfigRollback {
  /** The revision whose value was written back. */
  from: string
  /** The revision of the write (the new mod revision of the key); the current one when nothing was written. */
  revision: string
  /** False when the key already held that very value (nothing written). */
  written: boolean
}

const isCompacted = (err: unknown) => err instanceof Error && /compacted/.test(err.message)

async function at(ks: Keyspace, key: string, revision?: string): Promise<[IKeyValue | undefined, string]> {
  const res = await ks.kv.range({ key: ks.key(key), ...(revision === undefined ? {} : { revision }) })
  return [res.kvs[0], res.header.revision]
}

async function describe(ks: Keyspace, key: string, kv: IKeyValue): Promise<ConfigRevision> {
  let record: IKeyValue | undefined
  try {
    record = (await ks.kv.range({ key: ks.key(WRITERS_PREFIX + key), revision: kv.mod_revision })).kvs[0]
  } catch (err) {
    // a role that may not read writer records (see WriterRecords) still reads the values' history
    if (!isCompacted(err) && failureKind(err) !== 'denied') throw err
  }
  const writer = readWriter(record, kv.mod_revision)
  return {
    key,
    value: kv.value.toString(),
    revision: kv.mod_revision,
    modRevision: kv.mod_revision,
    createRevision: kv.create_revision,
    version: kv.version,
    writer,
    time: writer ? new Date(writer.at) : undefined,
  }
}

/**
 * The values of `key` (namespace-relative), newest first: its value now, then the one before it, walking
 * `mod_revision` back with reads at older revisions, until the put that created the key, the compaction
 * horizon, or `limit`. A key that does not exist now has no history here (its earlier life is not
 * reachable by revision from a missing key).
 */
export async function history(ks: Keyspace, key: string, limit: number): Promise<ConfigRevision[]> {
  const out: ConfigRevision[] = []
  let [kv] = await at(ks, key)
  while (kv && out.length < limit) {
    out.push(await describe(ks, key, kv))
    if (kv.version === '1' || kv.mod_revision === kv.create_revision) break
    try {
      ;[kv] = await at(ks, key, (BigInt(kv.mod_revision) - 1n).toString())
    } catch (err) {
      if (isCompacted(err)) break
      throw err
    }
  }
  return out
}

/**
 * Writes back the value `key` held at `revision`, in one txn that applies only if the key's mod revision
 * is still `expect` (by default: what it was when read here), so a change made meanwhile is never
 * overwritten: the rollback is refused with a `ConfigConflictError` instead.
 */
export async function rollback(
  ks: Keyspace,
  records: WriterRecords,
  key: string,
  revision: string,
  options: { expect?: string; writer?: string; service?: string },
): Promise<ConfigRollback> {
  if (typeof revision !== 'string' || !/^[1-9]\d*$/.test(revision))
    throw new InvalidArgumentError(
      `invalid revision ${show(revision)} to roll ${show(key)} back to: expected a decimal string`,
    )
  if (options.expect !== undefined && (typeof options.expect !== 'string' || !/^\d+$/.test(options.expect)))
    throw new InvalidArgumentError(
      `invalid expect ${show(options.expect)} for rollback of ${show(key)}: expected a decimal mod revision`,
    )
  let old: IKeyValue | undefined
  try {
    ;[old] = await at(ks, key, revision)
  } catch (err) {
    if (isCompacted(err)) throw new ConfigRevisionUnavailableError(key, revision, 'compacted', err)
    throw err
  }
  if (old?.mod_revision !== revision)
    throw new ConfigRevisionUnavailableError(
      key,
      revision,
      'no value of the key was written at that revision',
    )
  const [now] = await at(ks, key)
  const current = now?.mod_revision ?? '0'
  const expect = options.expect ?? current
  if (current === expect && now?.value.equals(old.value))
    return { from: revision, revision: current, written: false }
  const value = old.value.toString()
  const res = await records.txn(
    [{ key: ks.key(key), target: 'Mod', result: 'Equal', mod_revision: expect }],
    (record) =>
      recordedPut(ks, key, value, options.service, options.writer, { rollbackOf: revision }, record),
  )
  if (!res.succeeded)
    throw new ConfigConflictError(
      key,
      `rollback of config key ${show(key)} to revision ${revision} refused: the key changed since it was read (mod revision ${expect} expected)`,
    )
  return { from: revision, revision: res.header.revision, written: true }
}

// Who wrote a config value: a small JSON sidecar key written in the same txn as the value.
import { hostname } from 'node:os'
import type { ICompare, IKeyValue, IRequestOp } from 'etcd3'
import { failureKind } from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { Logger } from '../ops/logger.js'

/**
 * Where writer records live (namespace-relative): `{WRITERS_PREFIX}{config key}`, e.g.
 * `_etcdkit/config-writers/config/orders/rate-limit`. Outside the config prefix, so config readers (ours,
 * Go's, `etcdctl get --prefix config/`) never see them, and the value itself stays plain text.
 */
export const WRITERS_PREFIX = '_etcdkit/config-writers/'

/** Who wrote a value through etcdkit, as recorded beside it. Nothing secret. */
export interface ConfigWriter {
  /** What the caller said (`{ writer }` of `set`, `setMany`, `rollback`): a user, a tool, a deploy id. */
  writer?: string
  /** The kit's service, when it has one. */
  service?: string
  hostname: string
  pid: number
  /** When it was written, by the writer's clock (ISO 8601). */
  at: string
  /** For a rollback: the revision whose value was written back. */
  rollbackOf?: string
}

/** Options of a recorded write. */
export interface ConfigWriteOptions {
  /** Who is writing, recorded beside the value (e.g. a user name, `deploy-1234`). @default none: only host, pid and service are recorded */
  writer?: string
}

/** After a refused writer record, how long writes go without one before trying to record again. */
const RECORD_RETRY_MS = 60_000

/**
 * Writes config values with their writer records, best-effort like the session record: a role that may
 * write `{configPrefix}` but not `_etcdkit/config-writers/` (every role made before writer records existed)
 * keeps writing config; the values go without a record, and one warning says which prefix to grant. A
 * mandatory record would break every such deployment on upgrade for what is only an audit trail
 * (`history()` shows such values without a writer).
 */
export class WriterRecords {
  /** When etcd last refused a record (`performance.now()` ms); writes skip records for a while after. */
  #refusedAt: number | undefined
  #warned = false

  constructor(
    private readonly ks: Keyspace,
    private readonly log: Logger,
  ) {}

  /**
   * Runs one txn: `compare`, then the ops `build` gives, with writer records (`true`) or without
   * (`false`). When etcd refuses it for permission and the same txn without records is allowed, that one
   * is what was written. A refusal of the values themselves rejects as etcd said.
   */
  async txn(compare: ICompare[], build: (records: boolean) => IRequestOp[]) {
    const skip = this.#refusedAt !== undefined && performance.now() - this.#refusedAt < RECORD_RETRY_MS
    if (!skip) {
      try {
        const res = await this.ks.kv.txn({ compare, success: build(true), failure: [] })
        this.#refusedAt = undefined
        return res
      } catch (err) {
        if (failureKind(err) !== 'denied') throw err
        const res = await this.ks.kv.txn({ compare, success: build(false), failure: [] }).catch(() => {
          throw err // the values themselves are refused: etcd's first answer says so
        })
        this.#refusedAt = performance.now()
        if (!this.#warned) {
          this.#warned = true
          this.log.warn(
            { err, prefix: this.ks.key(WRITERS_PREFIX).toString() },
            `etcd refused the config writer record: values are written without one (history() shows no writer); grant this role readwrite on the key prefix ${JSON.stringify(this.ks.key(WRITERS_PREFIX).toString())} to record writers`,
          )
        }
        return res
      }
    }
    return this.ks.kv.txn({ compare, success: build(false), failure: [] })
  }
}

/** The put of a value and, with `record`, of its writer record, to go in one txn. */
export function recordedPut(
  ks: Keyspace,
  key: string,
  value: string,
  service: string | undefined,
  writer: string | undefined,
  extra?: { rollbackOf?: string },
  withRecord = true,
): IRequestOp[] {
  if (!withRecord) return [{ request_put: { key: ks.key(key), value: Buffer.from(value) } }]
  const record: ConfigWriter = {
    ...(writer === undefined ? {} : { writer }),
    ...(service === undefined ? {} : { service }),
    hostname: hostname(),
    pid: process.pid,
    at: new Date().toISOString(),
    ...extra,
  }
  return [
    { request_put: { key: ks.key(key), value: Buffer.from(value) } },
    { request_put: { key: ks.key(WRITERS_PREFIX + key), value: Buffer.from(JSON.stringify(record)) } },
  ]
}

/** The deletion of a value and of its writer record, to go in one txn. */
export function recordedDelete(ks: Keyspace, key: string): IRequestOp[] {
  return [
    { request_delete_range: { key: ks.key(key) } },
    { request_delete_range: { key: ks.key(WRITERS_PREFIX + key) } },
  ]
}

/** The writer record of a value whose mod revision is `modRevision`, if one was written in the same txn. */
export function readWriter(record: IKeyValue | undefined, modRevision: string): ConfigWriter | undefined {
  if (record === undefined || record.mod_revision !== modRevision) return undefined
  try {
    const parsed: unknown = JSON.parse(record.value.toString())
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined
    const r = parsed as Record<string, unknown>
    if (typeof r.hostname !== 'string' || typeof r.pid !== 'number' || typeof r.at !== 'string')
      return undefined
    return {
      ...(typeof r.writer === 'string' ? { writer: r.writer } : {}),
      ...(typeof r.service === 'string' ? { service: r.service } : {}),
      hostname: r.hostname,
      pid: r.pid,
      at: r.at,
      ...(typeof r.rollbackOf === 'string' ? { rollbackOf: r.rollbackOf } : {}),
    }
  } catch {
    return undefined
  }
}

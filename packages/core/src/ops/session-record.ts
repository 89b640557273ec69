// The session record: who is behind a lease (and so behind its lock, election and registry keys).
import { hostname } from 'node:os'
import { EtcdLeaseInvalidError } from 'etcd3'
import { isTerminal } from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { Lease, Session } from '../etcd/session.js'
import { Backoff, sleep } from '../util.js'
import type { Logger } from './logger.js'

/** Where session records live, under the kit namespace: `{namespace}sessions/{lease hex}`. */
export const SESSIONS_PREFIX = 'sessions/'

/**
 * What a kit writes about itself on its own lease, so that any tool can map a lock key, an election key
 * or a registration (all named by or attached to the lease) to the process behind it. Nothing secret:
 * anyone who can read the namespace can read it. `null` where the kit does not know.
 */
export interface SessionRecord {
  /** The kit's `service` option, else the service of its first registration. */
  service: string | null
  /** The address of the kit's first registration (`host:port`). */
  address: string | null
  hostname: string
  pid: number
  /** `metadata.version` of the kit's first registration. */
  version: string | null
  /** When the kit was created (ISO 8601, UTC). */
  startedAt: string
}

/** Reads a record's value; `undefined` when it is not a record (someone else's key, or a newer format). */
export function parseSessionRecord(text: string): SessionRecord | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null) return undefined
  const o = v as Record<string, unknown>
  const str = (x: unknown) => (typeof x === 'string' ? x : null)
  if (typeof o.hostname !== 'string' || typeof o.pid !== 'number' || typeof o.startedAt !== 'string')
    return undefined
  return {
    service: str(o.service),
    address: str(o.address),
    hostname: o.hostname,
    pid: o.pid,
    version: str(o.version),
    startedAt: o.startedAt,
  }
}

/**
 * Keeps this kit's session record in etcd: written on every new lease (it goes with the lease), and
 * written again when what it says changes (the first registration names the service and address).
 * A failed write is retried while the lease lives; permission denied is reported once and not retried.
 */
export class SessionRecordWriter {
  readonly #record: SessionRecord
  /** Bumped on every change of the record. */
  #version = 0
  /** The lease and record version last written; a write loop runs while `#writing`. */
  #written: { lease: string; version: number } | undefined
  #writing = false
  #refused = false

  constructor(
    private readonly ks: Keyspace,
    private readonly session: Session,
    private readonly log: Logger,
    service: string | undefined,
  ) {
    this.#record = {
      service: service ?? null,
      address: null,
      hostname: hostname(),
      pid: process.pid,
      version: null,
      startedAt: new Date().toISOString(),
    }
    session.on('lease', (lease) => void this.#write(lease))
  }

  /** The record as this kit writes it. */
  get record(): Readonly<SessionRecord> {
    return this.#record
  }

  /**
   * Fills in what the first registration tells (service, address, version) and writes the record again;
   * returns the registration.
   */
  noteRegistration<R extends { service: string; address: string; metadata: { version?: unknown } }>(
    reg: R,
  ): R {
    const r = this.#record
    if (r.address !== null) return reg
    r.service ??= reg.service
    r.address = reg.address
    if (typeof reg.metadata.version === 'string') r.version = reg.metadata.version
    this.#version++
    const lease = this.session.lease
    if (lease) void this.#write(lease)
    return reg
  }

  /** Writes the record on `lease` until the latest version is written or the lease is gone. */
  async #write(lease: Lease) {
    if (this.#refused || this.#writing) return
    this.#writing = true
    try {
      await this.#writeLoop(lease)
    } finally {
      this.#writing = false
    }
    // a newer lease arrived while this loop ran on the old one
    const current = this.session.lease
    if (current && current !== lease && this.#written?.lease !== current.id) void this.#write(current)
  }

  async #writeLoop(lease: Lease) {
    const backoff = new Backoff(100, 2_000)
    const key = this.ks.key(`${SESSIONS_PREFIX}${lease.hex}`)
    while (!lease.signal.aborted) {
      const version = this.#version
      if (this.#written?.lease === lease.id && this.#written.version === version) return
      try {
        await this.ks.kv.put({ key, value: Buffer.from(JSON.stringify(this.#record)), lease: lease.id })
        this.#written = { lease: lease.id, version }
      } catch (err) {
        if (err instanceof EtcdLeaseInvalidError) {
          this.session.leaseNotFound(lease) // the session grants a new one, and we write there
          return
        }
        // permission denied (a role without sessions/) or failed authentication: not retried
        if (isTerminal(err)) {
          this.#refused = true
          this.log.warn(
            { err, key: key.toString() },
            'cannot write the session record: holders() will list this process as unknown',
          )
          return
        }
        this.log.debug({ err, lease: lease.hex }, 'session record write failed; retrying')
        await sleep(backoff.next(), lease.signal).catch(() => {})
      }
    }
  }
}

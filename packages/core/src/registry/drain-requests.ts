// Drain requests addressed to this kit: an operator (the console, `etcdkit drain`) asks the owner of a
// registration to take it out of traffic; the owner writes `weight: 0` itself, so its registry never
// fights the tool that asked. Format: docs/PROTOCOL.md, "Drain requests".
import type { IEvent, IKeyValue } from 'etcd3'
import { PrefixFollower } from '../etcd/follow.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { Lease, Session } from '../etcd/session.js'
import type { WatchHub } from '../etcd/watch.js'
import type { Logger } from '../ops/logger.js'

/**
 * Where drain requests live, under the kit namespace: `{namespace}_etcdkit/drain/{leaseHex}/{registration
 * key}`, attached to the owner's lease (they go with it), the value a JSON record of who asked.
 */
export const DRAIN_PREFIX = '_etcdkit/drain/'

/** A drain request's value: who asked, from where, when. */
export interface DrainRecord {
  /** Who asked: `etcdkit-console:{user}`, `etcdkit-cli:{user}`. */
  writer: string
  hostname: string
  pid: number
  /** ISO 8601, UTC. */
  at: string
}

/** A drain request as read back: the owner's lease (hex), the registration it names, its record when readable. */
export interface DrainRequest {
  lease: string
  key: string
  record: DrainRecord | undefined
}

/** The request's key (namespace-relative) for registration `key` (namespace-relative) owned by `lease` (hex). */
export const drainKey = (lease: string, key: string): string => `${DRAIN_PREFIX}${lease}/${key}`

/**
 * Reads a request's key (namespace-relative) and value; `undefined` when the key is not a request. A value
 * that is not a record leaves the request standing with its author unknown (another writer's tool).
 */
export function parseDrainRequest(name: string, value: string): DrainRequest | undefined {
  if (!name.startsWith(DRAIN_PREFIX)) return undefined
  const rest = name.slice(DRAIN_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash <= 0 || !/^[0-9a-f]+$/.test(rest.slice(0, slash))) return undefined
  let record: DrainRecord | undefined
  try {
    const o = JSON.parse(value) as Record<string, unknown> | null
    if (o && typeof o.writer === 'string' && typeof o.hostname === 'string' && typeof o.at === 'string')
      record = {
        writer: o.writer,
        hostname: o.hostname,
        pid: typeof o.pid === 'number' ? o.pid : 0,
        at: o.at,
      }
  } catch {
    // not JSON: the request still stands
  }
  return { lease: rest.slice(0, slash), key: rest.slice(slash + 1), record }
}

/**
 * Follows the drain requests on this kit's current lease and tells the registry which of its keys are to
 * be drained. On a new lease it first carries the standing requests over to it (the old ones went with the
 * old lease), so a drain outlives a lost lease. A kit that may not read the prefix (a least-privilege
 * role) logs one warning and carries on without drains.
 */
export class DrainRequests {
  #follower: PrefixFollower | undefined
  #lease: Lease | undefined
  /** Registration key -> the request's value, on the current lease. */
  #requests = new Map<string, string>()
  /** The mod revision of the last event seen per request key (a check must not undo a newer put). */
  #latest = new Map<string, string>()
  #started = false
  #closed = false
  #refused = false
  readonly #onLease = (lease: Lease) => void this.#follow(lease)

  constructor(
    private readonly ks: Keyspace,
    private readonly hub: WatchHub,
    private readonly log: Logger,
    private readonly session: Session,
    /** Told the full set of registration keys to drain after every change. */
    private readonly apply: (drained: ReadonlySet<string>) => void,
  ) {}

  /** Starts following (idempotent): called with the kit's first registration. */
  start() {
    if (this.#started || this.#closed) return
    this.#started = true
    this.session.on('lease', this.#onLease)
    const lease = this.session.lease
    if (lease) void this.#follow(lease)
  }

  /** Whether a request for registration `key` stands on the current lease. */
  has(key: string): boolean {
    return this.#requests.has(key)
  }

  /** Stops following until the next `start()`: the kit's last registration is gone (no watch kept for none). */
  stop() {
    if (!this.#started) return
    this.#started = false
    this.session.off('lease', this.#onLease)
    this.#follower?.close()
    this.#follower = undefined
    this.#lease = undefined
    this.#requests.clear()
    this.#latest.clear()
  }

  close() {
    this.stop()
    this.#closed = true
  }

  async #follow(lease: Lease) {
    if (this.#closed || this.#refused || this.#lease?.id === lease.id) return
    const carried = [...this.#requests]
    this.#follower?.close()
    this.#follower = undefined
    this.#lease = lease
    const prefix = `${DRAIN_PREFIX}${lease.hex}/`
    // the requests of the old lease went with it: put them on the new one before reading it, or the first
    // read would find none and undrain
    await Promise.all(
      carried.map(([key, value]) =>
        this.ks.kv
          .put({ key: this.ks.key(`${prefix}${key}`), value: Buffer.from(value), lease: lease.id })
          .catch((err: unknown) => {
            this.log.warn(
              { err, key },
              'could not carry a drain request over to the new lease; the drain ends',
            )
          }),
      ),
    )
    if (this.#closed || this.#lease !== lease) return
    const follower: PrefixFollower = new PrefixFollower(
      this.ks,
      this.hub,
      this.log,
      prefix,
      'drain requests',
      {
        onList: (kvs: IKeyValue[]) => {
          if (this.#follower !== follower) return
          this.#requests = new Map(
            kvs.map((kv) => [this.ks.name(kv.key).slice(prefix.length), kv.value.toString()]),
          )
          this.#tell()
        },
        onEvents: (events: IEvent[]) => {
          if (this.#follower !== follower) return
          const deleted: [string, string][] = []
          for (const ev of events) {
            const key = this.ks.name(ev.kv.key).slice(prefix.length)
            this.#latest.set(key, ev.kv.mod_revision)
            if (ev.type === 'Delete') deleted.push([key, ev.kv.mod_revision])
            else this.#requests.set(key, ev.kv.value.toString())
          }
          this.#tell()
          if (deleted.length > 0) void this.#withdrawn(deleted, lease, follower)
        },
        onError: (error) => {
          // only a refusal that retrying cannot change ends a follower (permission, credentials): one
          // warning for the life of the kit, which goes on without drains
          if (this.#follower !== follower) return
          this.#follower = undefined
          this.#refused = true
          this.log.warn(
            { prefix: DRAIN_PREFIX, err: error },
            'cannot read drain requests (no read permission on the drain prefix?): this kit does not honour drain requests',
          )
        },
      },
    )
    this.#follower = follower
    follower.start()
  }

  /**
   * A request deleted: withdrawn by the operator, or gone with our lease (etcd deletes both at once). Only
   * the first ends the drain; the second is carried over when the new lease comes. Told apart by the
   * registration key: still on this lease means the lease lives.
   */
  async #withdrawn(deleted: [string, string][], lease: Lease, follower: PrefixFollower) {
    const checked = await Promise.all(
      deleted.map(async ([key, revision]) => {
        try {
          const res = await this.ks.kv.range({ key: this.ks.key(key) })
          return { key, revision, alive: res.kvs[0]?.lease === lease.id }
        } catch {
          // cannot tell now: the drain stands; a new lease, or the next list, settles it
          return { key, revision, alive: false }
        }
      }),
    )
    if (this.#follower !== follower || this.#closed) return
    let changed = false
    for (const c of checked)
      if (c.alive && this.#latest.get(c.key) === c.revision && this.#requests.delete(c.key)) changed = true
    if (changed) this.#tell()
  }

  #tell() {
    try {
      this.apply(new Set(this.#requests.keys()))
    } catch (err) {
      this.log.error({ err }, 'applying drain requests failed')
    }
  }
}

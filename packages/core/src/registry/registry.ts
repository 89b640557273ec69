import { EtcdLeaseInvalidError, type IEvent } from 'etcd3'
import { ClosedError, etcdError, InvalidArgumentError, isTerminal, show } from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import { deleteLeasedKey } from '../etcd/leased-delete.js'
import type { Lease, Session } from '../etcd/session.js'
import type { WatchHandle, WatchHub } from '../etcd/watch.js'
import type { RegistrationHealth } from '../ops/health.js'
import type { Logger } from '../ops/logger.js'
import { Backoff, deadline, settledWithin, sleep } from '../util.js'
import {
  checkAddress,
  checkKeys,
  checkMs,
  checkServiceName,
  checkSignal,
  isPlainObject,
} from '../validate.js'
import { bindWriters, type DialectName, type DialectWriter, type DialectWriteSpec } from './dialects/index.js'
import { DrainRequests } from './drain-requests.js'
import { checkMetadata, type InstanceMetadata } from './instance.js'

export interface RegisterOptions {
  /** The service name: letters, digits, `.`, `_`, `-`. */
  service: string
  /** `host:port` other instances reach this one at (IPv6 as `[::1]:8080`). */
  address: string
  metadata?: InstanceMetadata
  /**
   * The registry formats to write the instance in, all in one txn on the session lease: `etcd` (etcd's
   * naming format), `go-zero`, `kratos`, `kitex`, `hertz`, `go-micro`, each as a name or with its options
   * (`{ name: 'kratos', id: 'orders-1' }`). See docs/POLYGLOT.md. @default ['etcd']
   */
  dialects?: readonly DialectWriteSpec[]
  /**
   * What the instance speaks, for dialects that say it outside the metadata (Kratos' endpoint scheme,
   * go-micro's node `protocol`) without writing it into the `etcd` dialect's metadata (which Go gRPC
   * clients on etcd's resolver cannot take). @default `metadata.protocol`
   */
  protocol?: 'http' | 'https' | 'grpc'
  /** Gives up waiting for etcd when it aborts. */
  signal?: AbortSignal
  /** How long to wait for etcd before failing with `ETCDKIT_ETCD_UNAVAILABLE`, in ms. @default 10_000 */
  timeout?: number
}

/** A registration: its key stays in etcd, on the session lease, until `deregister()` or the kit closes. */
export interface Registration extends AsyncDisposable {
  readonly service: string
  readonly address: string
  /** The key of the first dialect (`{registryPrefix}{service}/{address}` for the default, `etcd`). */
  readonly key: string
  /** Every key of the registration, one per dialect in `dialects` order (go-zero's follows the lease). */
  readonly keys: readonly string[]
  /** The dialects it is written in. */
  readonly dialects: readonly DialectName[]
  readonly metadata: Readonly<InstanceMetadata>
  /**
   * Deletes the keys (all in one txn), and resolves once they are gone: etcd confirmed the delete, or the
   * lease they hang off is gone (lost or revoked: etcd deletes them with it). From the first call on they
   * are never written again; while etcd cannot be reached the delete is retried (at most 500 ms apart), so
   * an outage delays it but never leaves the instance registered. Later calls return the same promise.
   * Rejects only when etcd refuses the delete (permission denied); the keys then go with the lease when the
   * kit closes.
   */
  deregister(): Promise<void>
}

interface Entry {
  service: string
  address: string
  /** One per dialect: each knows its key for a lease, and its value (`normal` or `drainedWriters`). */
  writers: readonly DialectWriter[]
  /** The writers of the metadata registered. */
  readonly normal: readonly DialectWriter[]
  /** The same with `weight: 0`: written while a drain request for the registration stands. */
  readonly drainedWriters: readonly DialectWriter[]
  /** A drain request stands (see `DrainRequests`). */
  drained: boolean
  /** The writers of the last put etcd confirmed (what etcd holds). */
  writtenWriters: readonly DialectWriter[] | undefined
  /**
   * The keys with a placeholder lease: equal for two registrations whose keys would be equal (the lease is
   * the kit's, the same for all). Duplicates and deletions under way are found by them.
   */
  readonly ids: readonly string[]
  /** The keys of the latest put attempt (on `lease`); before any, those of `ids`. */
  keys: readonly string[]
  /** The lease of the latest put attempt: if the keys exist, they hang off this one. */
  lease: Lease | undefined
  /** The lease the key was last written with (a put etcd confirmed). */
  writtenWith: string | undefined
  /**
   * The lease of the last put etcd confirmed, kept when `writtenWith` is cleared to ask for a rewrite: the
   * keys not in `absent` are still in etcd on it (for `kit.health()`, key by key).
   */
  confirmedWith: string | undefined
  /** Keys seen deleted by someone else (or found missing) since the last confirmed put. */
  readonly absent: Set<string>
  /** The store revision of that put: a deletion at or below it is of an earlier incarnation of the key. */
  writtenAt: bigint
  /** The running write loop, if any (so others need not start one, and a deletion waits for it). */
  writing: Promise<void> | undefined
  /** Aborts the write loop once the registration is deregistered. */
  readonly stop: AbortController
  /** `deregister()` was asked for: the key must go and is never written again. */
  removed: boolean
  /** The message of the last failed write, until a write succeeds (for `kit.health()`). */
  lastError?: string | undefined
  /** The deletion, once asked for; every later `deregister()` returns it. */
  leaving: Promise<void> | undefined
}

/**
 * Keeps this kit's registrations in etcd: writes each on the session lease, writes them all again on a new
 * lease, and writes a key again when somebody else deletes it.
 */
export class Registry {
  readonly #entries = new Set<Entry>()
  /** The registrations by their `ids` (each of them). */
  readonly #byId = new Map<string, Entry>()
  /** The registrations by the keys of their latest put attempt (for the deletions a guard sees). */
  readonly #byKey = new Map<string, Entry>()
  /**
   * One deletes-only watch per key prefix (a service in a dialect) with registrations in this kit, shared by
   * them and cancelled with its last registration (a kit that registers many services over its life must
   * not keep a watcher in etcd for each).
   */
  readonly #guards = new Map<string, WatchHandle>()
  /** Registrations per guarded prefix. */
  readonly #perPrefix = new Map<string, number>()
  /** Deletions under way (deregistered, not yet confirmed gone), by id. */
  readonly #leaving = new Map<string, Entry>()
  #closed = false
  #closing: Promise<void> | undefined
  readonly #drains: DrainRequests

  constructor(
    private readonly ks: Keyspace,
    private readonly session: Session,
    private readonly hub: WatchHub,
    private readonly log: Logger,
    private readonly prefix: string,
    private readonly endpoints: readonly string[],
    /** How long `close()` waits for deletions before it lets the lease take the rest, in ms. */
    private readonly closeTimeout: number,
  ) {
    session.on('lease', (lease) => {
      void this.#rewriteAll(lease)
    })
    this.#drains = new DrainRequests(ks, hub, log, session, (keys) => this.#applyDrains(keys))
  }

  /** Drains (writes `weight: 0`) exactly the registrations named in `keys`, restores the others. */
  #applyDrains(keys: ReadonlySet<string>) {
    for (const entry of this.#entries) {
      const drained = entry.keys.some((k) => keys.has(k)) || entry.ids.some((k) => keys.has(k))
      if (entry.removed || entry.drained === drained) continue
      entry.drained = drained
      entry.writers = drained ? entry.drainedWriters : entry.normal
      this.log.info(
        { keys: entry.keys },
        drained ? 'drain requested: writing weight 0' : 'drain withdrawn: writing the registered weight',
      )
      void this.#rewrite(entry)
    }
  }

  /** Writes the entry until what etcd holds is its current value (it may change while a put is in flight). */
  async #rewrite(entry: Entry) {
    try {
      do {
        entry.writtenWith = undefined
        await this.#write(entry)
      } while (!entry.removed && entry.writtenWriters !== entry.writers)
    } catch (err) {
      this.log.warn({ err, keys: entry.keys }, 'could not write the registration after a drain change')
    }
  }

  get size() {
    return this.#entries.size
  }

  /** Each registration and whether it is written on the current lease, for `kit.health()`. */
  health(): RegistrationHealth[] {
    const lease = this.session.lease
    return [...this.#entries].map((e) => {
      const state = lease && e.writtenWith === lease.id ? 'written' : e.lastError ? 'failing' : 'pending'
      const keys = e.keys.map((key, i) => {
        const held = lease && e.confirmedWith === lease.id && !e.absent.has(key)
        const keyState = held ? 'written' : e.lastError ? 'failing' : 'pending'
        return {
          dialect: e.writers[i]!.dialect,
          key,
          state: keyState,
          ...(keyState === 'failing' ? { lastError: e.lastError } : {}),
        } as const
      })
      return {
        service: e.service,
        address: e.address,
        key: e.keys[0]!,
        state,
        ...(state === 'failing' ? { lastError: e.lastError } : {}),
        keys,
      }
    })
  }

  async register(options: RegisterOptions): Promise<Registration> {
    if (!isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid register options ${show(options)}`)
    // everything is checked before any state changes: a refused call must leave nothing behind
    checkKeys(
      options,
      ['service', 'address', 'metadata', 'dialects', 'protocol', 'signal', 'timeout'],
      'register',
    )
    const service = checkServiceName(options.service)
    const address = checkAddress(options.address)
    const metadata = checkMetadata(options.metadata)
    const protocol = checkProtocol(options.protocol)
    const writers = bindWriters(
      options.dialects,
      { service, address, metadata, ...(protocol ? { protocol } : {}) },
      { registryPrefix: this.prefix },
    )
    // what a drain writes: the same registration with weight 0 (Kitex and Hertz readers take weight <= 0 as
    // their default weight: a drain does not reach them)
    const drainedWriters = bindWriters(
      options.dialects,
      { service, address, metadata: { ...metadata, weight: 0 }, ...(protocol ? { protocol } : {}) },
      { registryPrefix: this.prefix },
    )
    const timeout = checkMs(options.timeout ?? 10_000, 'register timeout', true)
    checkSignal(options.signal)
    if (this.#closed) throw new ClosedError('the kit')
    const ids = writers.map((w) => w.key(PLACEHOLDER_LEASE))
    const { signal, done } = deadline(timeout, options.signal)
    let entry: Entry
    try {
      // the same keys deregistered a moment ago: their delete must land before the new put
      for (let leaving = this.#leavingOf(ids); leaving; leaving = this.#leavingOf(ids))
        await raceSignal(leaving.leaving, signal)
      if (this.#closed) throw new ClosedError('the kit')
      this.#checkFree(writers, ids, service, address)
      // a request standing for these keys (registered again after a deregistration): drained from the start
      const drained = ids.some((id) => this.#drains.has(id))
      entry = {
        service,
        address,
        writers: drained ? drainedWriters : writers,
        normal: writers,
        drainedWriters,
        drained,
        writtenWriters: undefined,
        ids,
        keys: ids,
        lease: undefined,
        writtenWith: undefined,
        confirmedWith: undefined,
        absent: new Set(),
        writtenAt: 0n,
        writing: undefined,
        stop: new AbortController(),
        removed: false,
        leaving: undefined,
      }
      this.#add(entry)
      try {
        await this.#write(entry, signal)
        if (entry.removed) throw new ClosedError('the kit')
      } catch (err) {
        // a put that timed out may still have been applied: take it back, as a deregistration would
        void this.#deregister(entry).catch(() => {})
        throw err
      }
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason
      if (signal.aborted) throw this.session.unavailableError(this.endpoints, timeout)
      throw err
    } finally {
      done()
    }
    return {
      service,
      address,
      get key() {
        return entry.keys[0]!
      },
      get keys() {
        return entry.keys
      },
      dialects: writers.map((w) => w.dialect),
      metadata,
      deregister: () => this.#deregister(entry),
      [Symbol.asyncDispose]: () => this.#deregister(entry),
    }
  }

  /** Refuses a registration whose keys another registration of this kit already has. */
  #checkFree(writers: readonly DialectWriter[], ids: readonly string[], service: string, address: string) {
    ids.forEach((id, i) => {
      const other = this.#byId.get(id)
      if (other === undefined) return
      const w = writers[i]!
      if (other.service === service && other.address === address)
        throw new InvalidArgumentError(
          `${show(address)} is already registered for service ${show(service)} by this kit`,
        )
      throw new InvalidArgumentError(
        `the ${w.dialect} key ${show(w.key(this.session.lease?.id ?? PLACEHOLDER_LEASE))} of ${show(address)} is already registered by this kit (for ${show(other.address)}): ${w.distinct}`,
      )
    })
  }

  /** A deletion under way of any of these keys. */
  #leavingOf(ids: readonly string[]): Entry | undefined {
    for (const id of ids) {
      const leaving = this.#leaving.get(id)
      if (leaving) return leaving
    }
    return undefined
  }

  /**
   * Deletes every key this kit registered and waits for those deletions (and any still under way) up to
   * `closeTimeout`; what is not confirmed by then is reported, and goes with the lease, which the kit
   * revokes (or stops keeping alive) right after. Always finishes.
   */
  close(): Promise<void> {
    // a second call shares the first: it resolves when the deletions are done, not before
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close() {
    this.#closed = true
    this.#drains.close()
    const deletions = [...this.#entries].map((e) => this.#deregister(e).catch(() => {}))
    for (const e of new Set(this.#leaving.values())) deletions.push(e.leaving!.catch(() => {}))
    await settledWithin(Promise.all(deletions), this.closeTimeout)
    for (const guard of this.#guards.values()) guard.cancel()
    this.#guards.clear()
    if (this.#leaving.size > 0) {
      const keys = [...new Set(this.#leaving.values())].flatMap((e) => e.keys).sort()
      this.log.warn(
        { keys, lease: this.session.lease?.hex },
        `could not delete ${keys.length} registration(s) within ${this.closeTimeout} ms; they go with the lease, which is revoked or left to expire`,
      )
    }
  }

  #deregister(entry: Entry): Promise<void> {
    entry.leaving ??= this.#leave(entry)
    return entry.leaving
  }

  async #leave(entry: Entry): Promise<void> {
    this.#remove(entry)
    for (const id of entry.ids) this.#leaving.set(id, entry)
    try {
      // Delete at once, and let a put still in flight finish meanwhile (its loop stops at `entry.stop`):
      // if it lands after that delete, delete again.
      const writtenAt = entry.writtenAt
      const writing = entry.writing
      await Promise.all([this.#delete(entry), writing?.catch(() => {})])
      if (writing && entry.writtenAt !== writtenAt) await this.#delete(entry)
    } finally {
      for (const id of entry.ids) if (this.#leaving.get(id) === entry) this.#leaving.delete(id)
    }
  }

  async #delete(entry: Entry): Promise<void> {
    const lease = entry.lease
    if (lease === undefined) return // never sent to etcd
    const keys = entry.keys
    await deleteLeasedKey(
      this.ks.kv,
      // one key as before dialects (a plain txn); several in one txn
      keys.length === 1 ? this.ks.key(keys[0]!) : keys.map((k) => this.ks.key(k)),
      lease,
      (err) =>
        this.log.debug(
          { err, keys: keys.map((k) => this.ks.full(k)) },
          'could not delete a registration yet; retrying',
        ),
      true,
    ).catch((err: unknown) => {
      // refused for good (permission, credentials): the keys go with the lease
      throw etcdError(err, `deleting the registration ${show(keys.join(', '))}`)
    })
  }

  #add(entry: Entry) {
    this.#entries.add(entry)
    for (const id of entry.ids) this.#byId.set(id, entry)
    this.#setKeys(entry, entry.ids)
    for (const prefix of guardPrefixes(entry)) {
      this.#perPrefix.set(prefix, (this.#perPrefix.get(prefix) ?? 0) + 1)
      this.#guard(prefix)
    }
    this.#drains.start()
  }

  /** Records the keys of the entry's latest put attempt (go-zero's change with the lease). */
  #setKeys(entry: Entry, keys: readonly string[]) {
    for (const k of entry.keys) if (this.#byKey.get(k) === entry) this.#byKey.delete(k)
    entry.keys = keys
    if (!entry.removed) for (const k of keys) this.#byKey.set(k, entry)
  }

  #remove(entry: Entry) {
    if (entry.removed) return
    entry.removed = true
    entry.stop.abort()
    if (!this.#entries.delete(entry)) return
    for (const id of entry.ids) if (this.#byId.get(id) === entry) this.#byId.delete(id)
    for (const k of entry.keys) if (this.#byKey.get(k) === entry) this.#byKey.delete(k)
    for (const prefix of guardPrefixes(entry)) {
      const left = (this.#perPrefix.get(prefix) ?? 1) - 1
      if (left > 0) {
        this.#perPrefix.set(prefix, left)
        continue
      }
      this.#perPrefix.delete(prefix)
      this.#guards.get(prefix)?.cancel()
      this.#guards.delete(prefix)
    }
    if (this.#entries.size === 0) this.#drains.stop()
  }

  /**
   * Writes the entry on the current lease, waiting for one and retrying until `signal` aborts or the entry
   * is deregistered. One loop per entry: a second caller waits for the running one.
   */
  #write(entry: Entry, signal?: AbortSignal): Promise<void> {
    if (entry.writing) return entry.writing
    const loop = this.#writeLoop(entry, signal).finally(() => {
      if (entry.writing === loop) entry.writing = undefined
    })
    entry.writing = loop
    return loop
  }

  async #writeLoop(entry: Entry, signal?: AbortSignal): Promise<void> {
    const backoff = new Backoff(50, 1_000)
    const linked = linkSignals(entry.stop.signal, signal)
    try {
      await this.#tryWrites(entry, backoff, linked.signal, signal)
    } finally {
      linked.done()
    }
  }

  async #tryWrites(entry: Entry, backoff: Backoff, either: AbortSignal, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (entry.removed) return
      let lease: Lease
      try {
        lease = await this.session.leaseReady(either)
      } catch (err) {
        if (entry.removed) return
        throw err
      }
      if (entry.removed) return
      // the keys for this lease (go-zero's names it), recorded before the put: a deletion seen from here
      // on is of these keys
      this.#setKeys(
        entry,
        entry.writers.map((w) => w.key(lease.id)),
      )
      entry.lease = lease
      const writers = entry.writers
      try {
        const puts = writers.map((w, i) => ({
          key: this.ks.key(entry.keys[i]!),
          value: Buffer.from(w.value),
          lease: lease.id,
        }))
        // one dialect: one put, as before dialects; several: one txn, so they appear together
        const res =
          puts.length === 1
            ? await this.ks.kv.put(puts[0]!)
            : await this.ks.kv.txn({
                compare: [],
                success: puts.map((put) => ({ request_put: put })),
                failure: [],
              })
        entry.writtenWriters = writers
        entry.writtenWith = lease.id
        entry.confirmedWith = lease.id
        entry.absent.clear()
        entry.writtenAt = BigInt(res.header.revision)
        entry.lastError = undefined
        return
      } catch (err) {
        entry.lastError = err instanceof Error ? err.message : String(err)
        if (isTerminal(err)) throw etcdError(err, `registering ${show(entry.keys.join(', '))}`)
        if (err instanceof EtcdLeaseInvalidError) this.session.leaseNotFound(lease)
        else
          this.log.debug(
            { err, keys: entry.keys.map((k) => this.ks.full(k)) },
            'registration write failed; retrying',
          )
        if (entry.removed) return
        if (signal?.aborted) throw signal.reason
        await sleep(backoff.next(), either).catch((e: unknown) => {
          if (!entry.removed) throw e
        })
      }
    }
  }

  async #rewriteAll(lease: Lease) {
    const stale = [...this.#entries].filter((e) => e.writtenWith !== lease.id && !e.writing)
    if (stale.length === 0) return
    this.log.info({ count: stale.length, lease: lease.hex }, 'writing registrations again on the new lease')
    await Promise.all(
      stale.map((e) =>
        this.#write(e, lease.signal).catch(() => {
          // lease lost again before we finished: the next 'lease' event writes them
        }),
      ),
    )
  }

  #guard(prefix: string) {
    if (this.#guards.has(prefix)) return
    const { key, range_end } = this.ks.range(prefix)
    const start = () =>
      this.hub.watch(
        { key, rangeEnd: range_end, startRevision: 0n, deletesOnly: true },
        {
          onEvents: (events: IEvent[]) => {
            for (const ev of events) {
              const entry = this.#byKey.get(this.ks.name(ev.kv.key))
              if (!entry || entry.removed || entry.writing) continue
              // the deletion of an earlier incarnation (e.g. of an old lease), already written again since
              if (BigInt(ev.kv.mod_revision) <= entry.writtenAt) continue
              if (entry.lease?.signal.aborted) {
                // our own lost lease, revoked or expired, took the key: the next lease writes it again
                this.log.debug(
                  { keys: entry.keys.map((k) => this.ks.full(k)) },
                  'registration went with the lost lease; writing it again',
                )
              } else {
                const key = ev.kv.key.toString()
                this.log.warn({ key }, 'registration deleted by someone else; writing it again')
                entry.absent.add(this.ks.name(ev.kv.key))
              }
              entry.writtenWith = undefined
              void this.#write(entry).catch(() => {})
            }
          },
          onReset: (reason: string) => {
            if (this.#closed || !this.#guards.has(prefix)) return
            // refused (a write-only role): watching again would be refused again, at once, for ever
            if (/permission denied|user name is empty|authentication failed/i.test(reason)) {
              this.#guards.delete(prefix)
              this.log.warn(
                { prefix, reason },
                'cannot watch own registrations (no read permission on the registry prefix): a registration deleted by someone else is not written again until the next lease',
              )
              return
            }
            this.#guards.set(prefix, start())
            // deletions during the gap are not replayed: check every key under this prefix
            for (const e of this.#entries) if (guardPrefixes(e).includes(prefix)) void this.#ensure(e)
          },
        },
      )
    this.#guards.set(prefix, start())
  }

  async #ensure(entry: Entry) {
    try {
      const keys = entry.keys
      const found = await Promise.all(
        keys.map(async (k) => (await this.ks.kv.range({ key: this.ks.key(k) })).kvs.length > 0),
      )
      if (!found.includes(false) || entry.removed) return
      keys.forEach((k, i) => {
        if (!found[i]) entry.absent.add(k)
      })
      await this.#write(entry)
    } catch {
      // etcd unavailable: the session's next lease rewrites everything
    }
  }
}

function checkProtocol(protocol: unknown): 'http' | 'https' | 'grpc' | undefined {
  if (protocol === undefined || protocol === 'http' || protocol === 'https' || protocol === 'grpc')
    return protocol
  throw new InvalidArgumentError(
    `invalid register protocol ${show(protocol)}: expected "http", "https" or "grpc"`,
  )
}

/** The lease ID that stands for "the kit's lease" in `Entry.ids` (etcd never grants lease 0). */
const PLACEHOLDER_LEASE = '0'

/**
 * The prefixes whose deletions concern the entry: the parent of each key (the lease, where a dialect puts
 * it in a key, is only ever in the last segment).
 */
function guardPrefixes(entry: Entry): string[] {
  return [...new Set(entry.ids.map((id) => id.slice(0, id.lastIndexOf('/') + 1)))]
}

/** Waits for `p`, or rejects with the signal's reason when it aborts first. */
function raceSignal(p: Promise<unknown> | undefined, signal: AbortSignal): Promise<unknown> {
  signal.throwIfAborted()
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    void Promise.resolve(p)
      .catch(() => {})
      .then((v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      })
  })
}

/**
 * A signal that aborts when `a` or `b` does; `done()` detaches it. By hand rather than `AbortSignal.any`,
 * which Node 20 may garbage-collect while it is awaited (see `deadline()` in util.ts).
 */
function linkSignals(a: AbortSignal, b: AbortSignal | undefined): { signal: AbortSignal; done(): void } {
  if (b === undefined) return { signal: a, done() {} }
  const controller = new AbortController()
  const onA = () => controller.abort(a.reason)
  const onB = () => controller.abort(b.reason)
  if (a.aborted) onA()
  else if (b.aborted) onB()
  a.addEventListener('abort', onA, { once: true })
  b.addEventListener('abort', onB, { once: true })
  return {
    signal: controller.signal,
    done() {
      a.removeEventListener('abort', onA)
      b.removeEventListener('abort', onB)
    },
  }
}

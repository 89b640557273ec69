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
import { checkMetadata, encodeEndpoint, type InstanceMetadata } from './instance.js'

export interface RegisterOptions {
  /** The service name: letters, digits, `.`, `_`, `-`. */
  service: string
  /** `host:port` other instances reach this one at (IPv6 as `[::1]:8080`). */
  address: string
  metadata?: InstanceMetadata
  /** Gives up waiting for etcd when it aborts. */
  signal?: AbortSignal
  /** How long to wait for etcd before failing with `ETCDKIT_ETCD_UNAVAILABLE`, in ms. @default 10_000 */
  timeout?: number
}

/** A registration: its key stays in etcd, on the session lease, until `deregister()` or the kit closes. */
export interface Registration extends AsyncDisposable {
  readonly service: string
  readonly address: string
  /** The registry key (`{registryPrefix}{service}/{address}`). */
  readonly key: string
  readonly metadata: Readonly<InstanceMetadata>
  /**
   * Deletes the key, and resolves once it is gone: etcd confirmed the delete, or the lease it hangs off is
   * gone (lost or revoked: etcd deletes the key with it). From the first call on the key is never written
   * again; while etcd cannot be reached the delete is retried (at most 500 ms apart), so an outage delays
   * it but never leaves the instance registered. Later calls return the same promise. Rejects only when
   * etcd refuses the delete (permission denied); the key then goes with the lease when the kit closes.
   */
  deregister(): Promise<void>
}

interface Entry {
  key: string
  value: string
  service: string
  /** The lease of the latest put attempt: if the key exists, it hangs off this one. */
  lease: Lease | undefined
  /** The lease the key was last written with (a put etcd confirmed). */
  writtenWith: string | undefined
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
  readonly #entries = new Map<string, Entry>()
  /**
   * One deletes-only watch per service with registrations in this kit, shared by them and cancelled with
   * the service's last registration (a kit that registers many services over its life must not keep a
   * watcher in etcd for each).
   */
  readonly #guards = new Map<string, WatchHandle>()
  /** Registrations per service in `#entries`. */
  readonly #perService = new Map<string, number>()
  /** Deletions under way (deregistered, not yet confirmed gone), by key. */
  readonly #leaving = new Map<string, Entry>()
  #closed = false
  #closing: Promise<void> | undefined

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
  }

  get size() {
    return this.#entries.size
  }

  /** Each registration and whether it is written on the current lease, for `kit.health()`. */
  health(): RegistrationHealth[] {
    const lease = this.session.lease
    return [...this.#entries.values()].map((e) => {
      const [service, address] = [e.service, e.key.slice(this.prefix.length + e.service.length + 1)]
      const state = lease && e.writtenWith === lease.id ? 'written' : e.lastError ? 'failing' : 'pending'
      return {
        service,
        address,
        key: e.key,
        state,
        ...(state === 'failing' ? { lastError: e.lastError } : {}),
      }
    })
  }

  keyOf(service: string, address: string) {
    return `${this.prefix}${service}/${address}`
  }

  async register(options: RegisterOptions): Promise<Registration> {
    if (!isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid register options ${show(options)}`)
    // everything is checked before any state changes: a refused call must leave nothing behind
    checkKeys(options, ['service', 'address', 'metadata', 'signal', 'timeout'], 'register')
    const service = checkServiceName(options.service)
    const address = checkAddress(options.address)
    const metadata = checkMetadata(options.metadata)
    const timeout = checkMs(options.timeout ?? 10_000, 'register timeout', true)
    checkSignal(options.signal)
    if (this.#closed) throw new ClosedError('the kit')
    const key = this.keyOf(service, address)
    const { signal, done } = deadline(timeout, options.signal)
    let entry: Entry
    try {
      // the same address deregistered a moment ago: its delete must land before the new put
      for (let leaving = this.#leaving.get(key); leaving; leaving = this.#leaving.get(key))
        await raceSignal(leaving.leaving, signal)
      if (this.#closed) throw new ClosedError('the kit')
      if (this.#entries.has(key)) {
        throw new InvalidArgumentError(
          `${show(address)} is already registered for service ${show(service)} by this kit`,
        )
      }
      entry = {
        key,
        value: encodeEndpoint(address, metadata),
        service,
        lease: undefined,
        writtenWith: undefined,
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
      key,
      metadata,
      deregister: () => this.#deregister(entry),
      [Symbol.asyncDispose]: () => this.#deregister(entry),
    }
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
    const deletions = [...this.#entries.values()].map((e) => this.#deregister(e).catch(() => {}))
    for (const e of this.#leaving.values()) deletions.push(e.leaving!.catch(() => {}))
    await settledWithin(Promise.all(deletions), this.closeTimeout)
    for (const guard of this.#guards.values()) guard.cancel()
    this.#guards.clear()
    if (this.#leaving.size > 0) {
      const keys = [...this.#leaving.keys()].sort()
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
    this.#leaving.set(entry.key, entry)
    try {
      // Delete at once, and let a put still in flight finish meanwhile (its loop stops at `entry.stop`):
      // if it lands after that delete, delete again.
      const writtenAt = entry.writtenAt
      const writing = entry.writing
      await Promise.all([this.#delete(entry), writing?.catch(() => {})])
      if (writing && entry.writtenAt !== writtenAt) await this.#delete(entry)
    } finally {
      if (this.#leaving.get(entry.key) === entry) this.#leaving.delete(entry.key)
    }
  }

  async #delete(entry: Entry): Promise<void> {
    const lease = entry.lease
    if (lease === undefined) return // never sent to etcd
    await deleteLeasedKey(
      this.ks.kv,
      this.ks.key(entry.key),
      lease,
      (err) =>
        this.log.debug(
          { err, key: this.ks.full(entry.key) },
          'could not delete a registration yet; retrying',
        ),
      true,
    ).catch((err: unknown) => {
      // refused for good (permission, credentials): the key goes with the lease
      throw etcdError(err, `deleting the registration ${show(entry.key)}`)
    })
  }

  #add(entry: Entry) {
    this.#entries.set(entry.key, entry)
    this.#perService.set(entry.service, (this.#perService.get(entry.service) ?? 0) + 1)
    this.#guard(entry.service)
  }

  #remove(entry: Entry) {
    if (entry.removed) return
    entry.removed = true
    entry.stop.abort()
    if (this.#entries.get(entry.key) !== entry) return
    this.#entries.delete(entry.key)
    const left = (this.#perService.get(entry.service) ?? 1) - 1
    if (left > 0) {
      this.#perService.set(entry.service, left)
      return
    }
    this.#perService.delete(entry.service)
    this.#guards.get(entry.service)?.cancel()
    this.#guards.delete(entry.service)
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
      entry.lease = lease
      try {
        const res = await this.ks.kv.put({
          key: this.ks.key(entry.key),
          value: Buffer.from(entry.value),
          lease: lease.id,
        })
        entry.writtenWith = lease.id
        entry.writtenAt = BigInt(res.header.revision)
        entry.lastError = undefined
        return
      } catch (err) {
        entry.lastError = err instanceof Error ? err.message : String(err)
        if (isTerminal(err)) throw etcdError(err, `registering ${show(entry.key)}`)
        if (err instanceof EtcdLeaseInvalidError) this.session.leaseNotFound(lease)
        else this.log.debug({ err, key: this.ks.full(entry.key) }, 'registration write failed; retrying')
        if (entry.removed) return
        if (signal?.aborted) throw signal.reason
        await sleep(backoff.next(), either).catch((e: unknown) => {
          if (!entry.removed) throw e
        })
      }
    }
  }

  async #rewriteAll(lease: Lease) {
    const stale = [...this.#entries.values()].filter((e) => e.writtenWith !== lease.id && !e.writing)
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

  #guard(service: string) {
    if (this.#guards.has(service)) return
    const { key, range_end } = this.ks.range(`${this.prefix}${service}/`)
    const start = () =>
      this.hub.watch(
        { key, rangeEnd: range_end, startRevision: 0n, deletesOnly: true },
        {
          onEvents: (events: IEvent[]) => {
            for (const ev of events) {
              const entry = this.#entries.get(this.ks.name(ev.kv.key))
              if (!entry || entry.removed || entry.writing) continue
              // the deletion of an earlier incarnation (e.g. of an old lease), already written again since
              if (BigInt(ev.kv.mod_revision) <= entry.writtenAt) continue
              if (entry.lease?.signal.aborted) {
                // our own lost lease, revoked or expired, took the key: the next lease writes it again
                this.log.debug(
                  { key: this.ks.full(entry.key) },
                  'registration went with the lost lease; writing it again',
                )
              } else {
                this.log.warn(
                  { key: this.ks.full(entry.key) },
                  'registration deleted by someone else; writing it again',
                )
              }
              entry.writtenWith = undefined
              void this.#write(entry).catch(() => {})
            }
          },
          onReset: (reason: string) => {
            if (this.#closed || !this.#guards.has(service)) return
            // refused (a write-only role): watching again would be refused again, at once, for ever
            if (/permission denied|user name is empty|authentication failed/i.test(reason)) {
              this.#guards.delete(service)
              this.log.warn(
                { service, reason },
                'cannot watch own registrations (no read permission on the registry prefix): a registration deleted by someone else is not written again until the next lease',
              )
              return
            }
            this.#guards.set(service, start())
            // deletions during the gap are not replayed: check every key of this service
            for (const e of this.#entries.values()) if (e.service === service) void this.#ensure(e)
          },
        },
      )
    this.#guards.set(service, start())
  }

  async #ensure(entry: Entry) {
    try {
      const res = await this.ks.kv.range({ key: this.ks.key(entry.key) })
      if (res.kvs.length === 0 && !entry.removed) await this.#write(entry)
    } catch {
      // etcd unavailable: the session's next lease rewrites everything
    }
  }
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

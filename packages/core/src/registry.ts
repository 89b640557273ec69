import { EtcdLeaseInvalidError, type IEvent } from 'etcd3'
import { ClosedError, EtcdUnavailableError, InvalidArgumentError, show } from './errors.js'
import type { RegistrationHealth } from './health.js'
import { checkMetadata, encodeEndpoint, type InstanceMetadata } from './instance.js'
import type { Keyspace } from './keyspace.js'
import type { Logger } from './logger.js'
import type { Lease, Session } from './session.js'
import { Backoff, deadline, sleep } from './util.js'
import { checkAddress, checkMs, checkServiceName, isPlainObject } from './validate.js'
import type { WatchHandle, WatchHub } from './watch.js'

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
  /** Deletes the key. Idempotent. */
  deregister(): Promise<void>
}

interface Entry {
  key: string
  value: string
  service: string
  /** The lease the key was last written with. */
  writtenWith: string | undefined
  /** A write loop is running for this entry (so others need not start one). */
  writing: boolean
  removed: boolean
  /** The message of the last failed write, until a write succeeds (for `kit.health()`). */
  lastError?: string | undefined
}

/**
 * Keeps this kit's registrations in etcd: writes each on the session lease, writes them all again on a new
 * lease, and writes a key again when somebody else deletes it.
 */
export class Registry {
  readonly #entries = new Map<string, Entry>()
  /**
   * One deletes-only watch per service this kit has registered, shared by its registrations and kept until
   * the kit closes: a service that deregisters and registers again (restarts, tests) would otherwise create
   * and cancel a watch each time, which costs more on the shared stream than an idle watch.
   */
  readonly #guards = new Map<string, WatchHandle>()
  #closed = false

  constructor(
    private readonly ks: Keyspace,
    private readonly session: Session,
    private readonly hub: WatchHub,
    private readonly log: Logger,
    private readonly prefix: string,
    private readonly endpoints: readonly string[],
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
    const service = checkServiceName(options.service)
    const address = checkAddress(options.address)
    const metadata = checkMetadata(options.metadata)
    const timeout = checkMs(options.timeout ?? 10_000, 'register timeout', true)
    if (this.#closed) throw new ClosedError('the kit')
    const key = this.keyOf(service, address)
    if (this.#entries.has(key)) {
      throw new InvalidArgumentError(
        `${show(address)} is already registered for service ${show(service)} by this kit`,
      )
    }
    const entry: Entry = {
      key,
      value: encodeEndpoint(address, metadata),
      service,
      writtenWith: undefined,
      writing: false,
      removed: false,
    }
    this.#entries.set(key, entry)
    this.#guard(service)
    const { signal, done } = deadline(timeout, options.signal)
    try {
      await this.#write(entry, signal)
    } catch (err) {
      this.#remove(entry)
      // a put that timed out may still have been applied: take it back
      this.ks.kv.deleteRange({ key: this.ks.key(key) }).catch(() => {})
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

  /** Deletes every key this kit registered (the lease is revoked right after by the kit). */
  async close() {
    if (this.#closed) return
    this.#closed = true
    const entries = [...this.#entries.values()]
    for (const guard of this.#guards.values()) guard.cancel()
    this.#guards.clear()
    await Promise.allSettled(entries.map((e) => this.#deregister(e)))
  }

  async #deregister(entry: Entry) {
    if (entry.removed) return
    this.#remove(entry)
    try {
      await this.ks.kv.deleteRange({ key: this.ks.key(entry.key) })
    } catch (err) {
      throw new EtcdUnavailableError(
        `could not delete ${show(entry.key)} from etcd (it expires with the lease)`,
        err,
      )
    }
  }

  #remove(entry: Entry) {
    entry.removed = true
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key)
  }

  /** Writes the entry on the current lease, waiting for one and retrying until `signal` aborts. */
  async #write(entry: Entry, signal?: AbortSignal): Promise<void> {
    entry.writing = true
    try {
      await this.#writeLoop(entry, signal)
    } finally {
      entry.writing = false
    }
  }

  async #writeLoop(entry: Entry, signal?: AbortSignal): Promise<void> {
    const backoff = new Backoff(50, 1_000)
    for (;;) {
      if (entry.removed) return
      const lease: Lease = await this.session.leaseReady(signal)
      try {
        await this.ks.kv.put({
          key: this.ks.key(entry.key),
          value: Buffer.from(entry.value),
          lease: lease.id,
        })
        entry.writtenWith = lease.id
        entry.lastError = undefined
        // deregistered while the put was in flight: the key must not outlive that
        if (entry.removed) await this.ks.kv.deleteRange({ key: this.ks.key(entry.key) })
        return
      } catch (err) {
        entry.lastError = err instanceof Error ? err.message : String(err)
        if (err instanceof EtcdLeaseInvalidError) this.session.leaseNotFound(lease)
        else this.log.debug({ err, key: entry.key }, 'registration write failed; retrying')
        if (signal?.aborted) throw signal.reason
        await sleep(backoff.next(), signal)
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
              this.log.warn({ key: entry.key }, 'registration deleted by someone else; writing it again')
              entry.writtenWith = undefined
              void this.#write(entry).catch(() => {})
            }
          },
          onReset: () => {
            if (this.#closed) return
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
      if (res.kvs.length === 0 && !entry.removed && !entry.writing) await this.#write(entry)
    } catch {
      // etcd unavailable: the session's next lease rewrites everything
    }
  }
}

import { EventEmitter } from 'node:events'
import type { IKeyValue } from 'etcd3'
import { ClosedError, type EtcdKitError } from '../errors.js'
import { type Freshness, type FreshnessEvents, PrefixFollower } from '../etcd/follow.js'
import type { Keyspace } from '../etcd/keyspace.js'
import { View } from '../etcd/view.js'
import type { WatchHub } from '../etcd/watch.js'
import { currency, type ViewHealth } from '../ops/health.js'
import type { Logger } from '../ops/logger.js'
import { deferred, liveValues } from '../util.js'
import type { DialectName, DialectReader, DialectReadSpec } from './dialects/index.js'
import { badWeight, type Instance, weightOf } from './instance.js'

/** Options of `kit.discover()`. */
export interface DiscoverOptions {
  /**
   * The registry dialect to read: `etcd` (etcd's naming format), `go-zero`, `kratos`, `kitex`, `hertz`,
   * `go-micro`, as a name or with its read options (`{ name: 'kratos', scheme: 'grpc' }`). See
   * docs/POLYGLOT.md. @default 'etcd'
   */
  dialect?: DialectReadSpec
  /**
   * The protocol the caller speaks to the instances: a dialect listing one endpoint per protocol (Kratos)
   * reads the one it names (`kit.service()` reads `http`, the gRPC resolver `grpc`). @default any
   */
  protocol?: 'http' | 'grpc'
}

/** A registry value that could not be read; it is skipped, and reported once per key and value. */
export interface InvalidEntry {
  key: string
  value: string
  reason: string
}

/** Reports each unreadable registry value once per key and value: a warning, and an `invalid` event. */
export class InvalidReports {
  readonly #seen = new Map<string, string>()
  constructor(
    private readonly log: Logger,
    private readonly emit: (entry: InvalidEntry) => void,
    /** The key with the namespace, for the log line: what an operator finds in etcd. */
    private readonly full: (key: string) => string = (key) => key,
  ) {}

  report(key: string, value: string, reason: string) {
    if (this.#seen.get(key) === value) return
    this.#seen.set(key, value)
    const entry = { key, value, reason }
    this.log.warn({ ...entry, key: this.full(key) }, 'skipping a registry value that cannot be read')
    this.emit(entry)
  }

  /** The key was deleted or is readable again: a later bad value is reported anew. */
  clear(key: string) {
    this.#seen.delete(key)
  }

  /**
   * Reads the registry value of `key` (kit-relative) with `reader` (its dialect, bound to the service;
   * `named: false` when the key names no service): the instance, or `undefined` for a delete op, a value for
   * another reader (Kratos' other names) or an unreadable value (reported once).
   */
  read(key: string, kv: IKeyValue, reader: DialectReader, named = true): Instance | undefined {
    const value = kv.value.toString()
    const decoded = reader.decode(key, value)
    if (decoded.kind === 'delete' || decoded.kind === 'other') return undefined
    // the one bound on weights read from etcd, whatever the dialect: out of bounds is skipped and reported
    const outOfBounds = decoded.kind === 'instance' ? badWeight(decoded.metadata.weight) : undefined
    if (outOfBounds !== undefined) {
      this.report(key, value, outOfBounds)
      return undefined
    }
    if (decoded.kind === 'unreadable' || !named) {
      this.report(
        key,
        value,
        decoded.kind === 'unreadable' ? decoded.reason : 'no "/" after the service name',
      )
      return undefined
    }
    this.clear(key)
    return {
      service: reader.service,
      dialect: reader.dialect,
      address: decoded.address,
      key,
      metadata: decoded.metadata,
      weight: weightOf(decoded.metadata),
      modRevision: kv.mod_revision,
    }
  }
}

export interface DiscoveryEvents extends FreshnessEvents {
  /** The instance set changed (sorted by key); also fires once when the first list is loaded. */
  change: [instances: readonly Instance[]]
  invalid: [entry: InvalidEntry]
  /**
   * The registry cannot be read and the view has stopped (permission denied, authentication failed): the
   * instances are not current any more. Emitted only when listened to (an unheard `error` would throw).
   */
  error: [error: EtcdKitError]
  close: []
}

/**
 * The shared, per-service state behind every `Discovery` handle of one kit: list at revision R, then
 * watch from R + 1 on the kit's one watch stream; list again when the watch cannot go on.
 */
class ServiceWatch extends EventEmitter<DiscoveryEvents> {
  instances: readonly Instance[] = []
  readonly ready = deferred<void>()
  loaded = false
  /** Why the view stopped, if it did. */
  error: EtcdKitError | undefined
  handles = 0
  readonly #byKey = new Map<string, Instance>()
  readonly #reported: InvalidReports
  readonly follower: PrefixFollower

  readonly service: string

  constructor(
    readonly reader: DialectReader,
    private readonly ks: Keyspace,
    hub: WatchHub,
    log: Logger,
  ) {
    super()
    this.service = reader.service
    this.#reported = new InvalidReports(
      log,
      (entry) => this.emit('invalid', entry),
      (key) => ks.full(key),
    )
    this.setMaxListeners(0)
    this.ready.promise.catch(() => {}) // a closed, never-loaded view must not raise unhandled rejections
    this.follower = new PrefixFollower(
      ks,
      hub,
      log,
      reader.prefix,
      `discovery watch of ${JSON.stringify(reader.service)} (${reader.dialect})`,
      {
        onList: (kvs) => {
          this.#byKey.clear()
          for (const kv of kvs) this.#apply(kv, false)
          this.#publish(true)
        },
        onEvents: (events) => {
          let changed = false
          for (const ev of events) changed = this.#apply(ev.kv, ev.type === 'Delete') || changed
          if (changed) this.#publish()
        },
        onStale: (reason) => this.emit('stale', reason),
        onCurrent: () => this.emit('current'),
        onError: (error) => {
          this.error = error
          this.ready.reject(error)
          if (this.listenerCount('error') > 0) this.emit('error', error)
        },
      },
    )
    this.follower.start()
  }

  close() {
    this.follower.close()
    this.ready.reject(new ClosedError(`discovery of ${JSON.stringify(this.service)}`))
    this.emit('close')
  }

  /** Applies one key-value (or its deletion); returns whether the instance set changed. */
  #apply(kv: IKeyValue, deleted: boolean): boolean {
    const key = this.ks.name(kv.key)
    if (deleted) {
      this.#reported.clear(key)
      return this.#byKey.delete(key)
    }
    const instance = this.#reported.read(key, kv, this.reader)
    if (!instance) return this.#byKey.delete(key)
    this.#byKey.set(key, instance)
    return true
  }

  #publish(initial = false) {
    this.instances = [...this.#byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    if (initial && !this.loaded) {
      this.loaded = true
      this.ready.resolve()
    }
    this.emit('change', this.instances)
  }
}

/**
 * A live view of one service's instances. `instances` is always the current set (empty until `ready`,
 * and possibly empty after); `change` fires on every change, and the view is an async iterable of sets.
 */
export class Discovery
  extends View<DiscoveryEvents>
  implements AsyncIterable<readonly Instance[]>, Freshness
{
  readonly service: string
  /** The registry dialect the view reads (`etcd` unless `discover()` was given another). */
  readonly dialect: DialectName
  /** Resolves once the first list has been loaded from etcd. */
  readonly ready: Promise<void>
  readonly #shared: ServiceWatch
  readonly #release: () => void
  readonly #forward = {
    change: (list: readonly Instance[]) => this.emit('change', list),
    invalid: (e: InvalidEntry) => this.emit('invalid', e),
    stale: (reason: string) => this.emit('stale', reason),
    current: () => this.emit('current'),
    error: (e: EtcdKitError) => {
      if (this.listenerCount('error') > 0) this.emit('error', e)
    },
    close: () => this.close(),
  }

  /** @internal created by `EtcdKit.discover()` */
  constructor(shared: ServiceWatch, release: () => void) {
    super(() => shared.follower)
    this.service = shared.service
    this.dialect = shared.reader.dialect
    this.#shared = shared
    this.#release = release
    this.ready = shared.ready.promise
    shared.on('change', this.#forward.change)
    shared.on('invalid', this.#forward.invalid)
    shared.on('stale', this.#forward.stale)
    shared.on('current', this.#forward.current)
    shared.on('error', this.#forward.error)
    shared.on('close', this.#forward.close)
  }

  /** The current instances, sorted by key (a property read: no I/O). */
  get instances(): readonly Instance[] {
    return this.#shared.instances
  }

  /** Whether the first list has been loaded. */
  get loaded(): boolean {
    return this.#shared.loaded
  }

  /** Why the view stopped following the registry (then `instances` is not current), if it did. */
  get error(): EtcdKitError | undefined {
    return this.#shared.error
  }

  /** Yields the current set, then every new set, until the view is closed. */
  [Symbol.asyncIterator](): AsyncIterator<readonly Instance[]> {
    return liveValues<readonly Instance[]>(this, 'change', () => this.instances)
  }

  /** The shared watch ends with the last view of the service. */
  protected onClose() {
    this.#shared.off('change', this.#forward.change)
    this.#shared.off('invalid', this.#forward.invalid)
    this.#shared.off('stale', this.#forward.stale)
    this.#shared.off('current', this.#forward.current)
    this.#shared.off('error', this.#forward.error)
    this.#shared.off('close', this.#forward.close)
    this.#release()
  }
}

/** Creates and shares the per-service watches of one kit. */
export class DiscoveryHub {
  readonly #services = new Map<string, ServiceWatch>()

  constructor(
    private readonly ks: Keyspace,
    private readonly hub: WatchHub,
    private readonly log: Logger,
  ) {}

  get size() {
    return this.#services.size
  }

  /** Each service watched, for `kit.health()`. */
  views(): ViewHealth[] {
    return [...this.#services.values()].map((s) => ({
      kind: 'discovery',
      name: s.service,
      dialect: s.reader.dialect,
      loaded: s.loaded,
      ...currency(s.follower),
      instances: s.instances.length,
    }))
  }

  /** A view of the service `reader` is bound to, shared with every other view reading it the same way. */
  open(reader: DialectReader): Discovery {
    const id = reader.id
    let shared = this.#services.get(id)
    if (!shared) {
      shared = new ServiceWatch(reader, this.ks, this.hub, this.log)
      this.#services.set(id, shared)
    }
    shared.handles++
    const s = shared
    return new Discovery(s, () => {
      if (--s.handles === 0 && this.#services.get(id) === s) {
        this.#services.delete(id)
        s.close()
      }
    })
  }

  close() {
    for (const s of this.#services.values()) s.close()
    this.#services.clear()
  }
}

// The whole registry as one live view, every service and its instances: what tools (the CLI, the console) show.
import { EventEmitter } from 'node:events'
import type { IKeyValue } from 'etcd3'
import { ClosedError, type EtcdKitError } from '../errors.js'
import { PrefixFollower } from '../etcd/follow.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { WatchHub } from '../etcd/watch.js'
import type { Logger } from '../ops/logger.js'
import { deferred } from '../util.js'
import type { DialectCatalog, DialectName } from './dialects/index.js'
import { type InvalidEntry, InvalidReports } from './discovery.js'
import type { Instance } from './instance.js'

/** An instance as the catalog lists it: with the lease its key hangs on. */
export interface CatalogInstance extends Instance {
  /** The key's lease in lowercase hex (the session that wrote it); `""` for a key with no lease. */
  readonly lease: string
}

export interface CatalogEvents {
  /** Some service's instances changed; also fires once when the first list is loaded. */
  change: [services: ReadonlyMap<string, readonly CatalogInstance[]>]
  invalid: [entry: InvalidEntry]
  /** The registry cannot be read (permission denied, authentication failed); the view has stopped. */
  error: [error: EtcdKitError]
  close: []
}

const byKey = (a: Instance, b: Instance) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)

/**
 * Every registration of one dialect (`etcd`: under the registry prefix), kept current from one watch:
 * `services` maps each service name to its instances, sorted by key. Values are read the way discovery
 * reads them (for `etcd`: Go's format, the seed's bare `host:port`, `Op: 1` as a delete); unreadable ones
 * are skipped and reported once.
 */
export class Catalog extends EventEmitter<CatalogEvents> {
  /** Resolves once the first list has been loaded. */
  readonly ready: Promise<void>
  readonly #ready = deferred<void>()
  readonly #byKey = new Map<string, CatalogInstance>()
  readonly #reported: InvalidReports
  readonly #follower: PrefixFollower
  #services: ReadonlyMap<string, readonly CatalogInstance[]> = new Map()
  #closed = false

  /** @internal created by `EtcdKit.catalog()` */
  constructor(
    private readonly ks: Keyspace,
    hub: WatchHub,
    log: Logger,
    private readonly dialectCatalog: DialectCatalog,
  ) {
    super()
    this.#reported = new InvalidReports(
      log,
      (entry) => this.emit('invalid', entry),
      (key) => ks.full(key),
    )
    this.ready = this.#ready.promise
    this.ready.catch(() => {})
    this.#follower = new PrefixFollower(
      ks,
      hub,
      log,
      dialectCatalog.root,
      `registry catalog (${dialectCatalog.dialect})`,
      {
        onList: (kvs) => {
          this.#byKey.clear()
          for (const kv of kvs) this.#apply(kv, false)
          this.#publish()
          this.#ready.resolve()
        },
        onEvents: (events) => {
          let changed = false
          for (const ev of events) changed = this.#apply(ev.kv, ev.type === 'Delete') || changed
          if (changed) this.#publish()
        },
        onError: (error) => {
          this.#ready.reject(error)
          // an unheard 'error' would throw: `ready` carries it then
          if (this.listenerCount('error') > 0) this.emit('error', error)
        },
      },
    )
    this.#follower.start()
  }

  /** The registry dialect this catalog reads. */
  get dialect(): DialectName {
    return this.dialectCatalog.dialect
  }

  /** The key prefix (kit-relative) under which the dialect keeps every service: `services/`, `/microservices/`, ... */
  get root(): string {
    return this.dialectCatalog.root
  }

  /** Each service's instances, sorted by key. */
  get services(): ReadonlyMap<string, readonly CatalogInstance[]> {
    return this.#services
  }

  close() {
    if (this.#closed) return
    this.#closed = true
    this.#follower.close()
    this.#ready.reject(new ClosedError('the registry catalog'))
    this.emit('close')
  }

  [Symbol.dispose]() {
    this.close()
  }

  #apply(kv: IKeyValue, deleted: boolean): boolean {
    const key = this.ks.name(kv.key)
    if (deleted) {
      this.#reported.clear(key)
      return this.#byKey.delete(key)
    }
    const service = this.dialectCatalog.serviceOf(key.slice(this.dialectCatalog.root.length))
    const instance = this.#reported.read(
      key,
      kv,
      this.dialectCatalog.reader(service ?? ''),
      service !== undefined,
    )
    if (!instance) return this.#byKey.delete(key)
    this.#byKey.set(key, { ...instance, lease: kv.lease === '0' ? '' : BigInt(kv.lease).toString(16) })
    return true
  }

  #publish() {
    const services = new Map<string, CatalogInstance[]>()
    for (const instance of [...this.#byKey.values()].sort(byKey)) {
      const list = services.get(instance.service)
      if (list) list.push(instance)
      else services.set(instance.service, [instance])
    }
    this.#services = services
    this.emit('change', services)
  }
}

// The console's live state: the registry catalog, the config tree and the lock/election queues, each
// refreshed from the kit's watch stream and published as one snapshot.
import { EventEmitter } from 'node:events'
import type { Catalog, ConfigWatch, EtcdKit } from '@etcdkit/core'
import { inspect } from '@etcdkit/core/integration'
import {
  type ConfigEntry,
  configEntries,
  type Queue,
  queues,
  type ServiceInstanceRow,
  serviceRows,
} from './inspect.js'

export interface Snapshot {
  services: ServiceInstanceRow[]
  queues: Queue[]
  config: ConfigEntry[]
  /** When this snapshot was taken (ISO 8601): TTLs count down from here. */
  at: string
}

/**
 * Follows everything the console shows; emits `snapshot` after a change (changes within 50 ms are
 * published together). Queues and TTLs are read again on each change of the kit's namespace.
 */
export class LiveState extends EventEmitter<{ snapshot: [Snapshot]; error: [Error] }> {
  readonly #kit: EtcdKit
  readonly #catalog: Catalog
  readonly #config: ConfigWatch
  readonly #watch: { cancel(): void }
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #again = false
  #last: Snapshot | undefined
  #closed = false

  constructor(kit: EtcdKit) {
    super()
    this.#kit = kit
    this.#catalog = kit.catalog()
    this.#config = kit.config.watch()
    this.#catalog.on('change', () => this.#schedule())
    this.#config.on('change', () => this.#schedule())
    // lock and election keys live anywhere in the namespace: any change may move a queue
    this.#watch = inspect(kit).watchNamespace(() => this.#schedule())
  }

  /** The first snapshot, once the registry and config are read. */
  async ready(): Promise<Snapshot> {
    await Promise.all([this.#catalog.ready, this.#config.ready])
    await this.#refresh()
    return this.#last!
  }

  get last(): Snapshot | undefined {
    return this.#last
  }

  close() {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#watch.cancel()
    this.#catalog.close()
    this.#config.close()
  }

  #schedule() {
    if (this.#closed || this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      // closed meanwhile (the kit with it): that failure is no one's news
      void this.#refresh().catch((err: Error) => {
        if (!this.#closed) this.emit('error', err)
      })
    }, 50)
  }

  #refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true
      return this.#refreshing
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#again = false
          const services = this.#catalog.services
          const [rows, q] = await Promise.all([serviceRows(this.#kit, services), queues(this.#kit)])
          this.#last = {
            services: rows,
            queues: q,
            config: configEntries(this.#config.snapshot(), services.keys()),
            at: new Date().toISOString(),
          }
          if (!this.#closed) this.emit('snapshot', this.#last)
        } while (this.#again && !this.#closed)
      } finally {
        this.#refreshing = undefined
      }
    })()
    return this.#refreshing
  }
}

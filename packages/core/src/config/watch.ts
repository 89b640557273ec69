import { EventEmitter } from 'node:events'
import { ClosedError } from '../errors.js'
import type { Freshness, FreshnessEvents } from '../etcd/follow.js'
import { deferred, Inbox } from '../util.js'
import type { ConfigEvent, ConfigTree } from './tree.js'

export interface ConfigWatchEvents extends FreshnessEvents {
  /** A key under the watched prefix was put or deleted (after `ready`, in revision order). */
  change: [event: ConfigEvent]
  close: []
}

/**
 * Every change under a subtree of the config prefix, from the kit's one config watch: `change` events, and
 * async iteration that yields a `put` for each key present once the config is read, then every change.
 */
export class ConfigWatch
  extends EventEmitter<ConfigWatchEvents>
  implements AsyncIterable<ConfigEvent>, Freshness
{
  /** The watched prefix, relative to the config prefix ("" for all of it). */
  readonly prefix: string
  /** Resolves once the config has been read from etcd. */
  readonly ready: Promise<void>
  readonly #tree: ConfigTree
  readonly #release: () => void
  readonly #unsubscribe: Array<() => void>
  readonly #ready = deferred<void>()
  #closed = false

  /** @internal created by `kit.config.watch()` */
  constructor(tree: ConfigTree, prefix: string, release: () => void) {
    super()
    this.prefix = prefix
    this.#tree = tree
    this.#release = release
    this.ready = this.#ready.promise
    this.ready.catch(() => {})
    tree.ready.promise.then(this.#ready.resolve, this.#ready.reject)
    this.#unsubscribe = [
      tree.onSubtree(prefix, (event) => {
        if (tree.loaded) this.emit('change', event)
      }),
      tree.onFreshness((reason) =>
        reason === undefined ? this.emit('current') : this.emit('stale', reason),
      ),
    ]
  }

  /** `true` while the config is not known current (see `Freshness`); `stale`/`current` events mark changes. */
  get stale(): boolean {
    return this.#tree.freshness.stale
  }

  /** The etcd revision the config mirror reflects (decimal): every change up to it is applied. */
  get syncedRevision(): string {
    return this.#tree.freshness.syncedRevision
  }

  /** When the config was last known current (`Date.now()` ms): now while current; `undefined` before. */
  get syncedAt(): number | undefined {
    return this.#tree.freshness.syncedAt
  }

  /** The keys under the prefix and their text now (empty until `ready`). */
  snapshot(): Map<string, string> {
    const out = new Map<string, string>()
    for (const [key, entry] of this.#tree.entries) if (key.startsWith(this.prefix)) out.set(key, entry.text)
    return out
  }

  /** Yields a `put` per key present once the config is read (in key order), then every change, until closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<ConfigEvent, void, undefined> {
    if (this.#closed) return
    const inbox = new Inbox<[event: ConfigEvent, seq: number]>()
    const unsubscribe = this.#tree.onSubtree(this.prefix, (event, seq) => inbox.push([event, seq]))
    const onClose = () => inbox.end()
    this.on('close', onClose)
    try {
      try {
        await this.ready
      } catch {
        return
      }
      const first = this.#tree.seq
      const present = [...this.#tree.entries]
        .filter(([key]) => key.startsWith(this.prefix))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      for (const [key, entry] of present)
        yield { type: 'put', key, value: entry.text, revision: entry.revision } satisfies ConfigEvent
      // events queued before the snapshot was read are already in it
      for await (const [event, seq] of inbox.drain()) if (seq > first) yield event
    } finally {
      unsubscribe()
      this.off('close', onClose)
    }
  }

  /** Stops watching. Idempotent. */
  close() {
    if (this.#closed) return
    this.#closed = true
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    this.#release()
    this.#ready.reject(new ClosedError(`config watch of ${JSON.stringify(this.prefix)}`))
    this.emit('close')
  }

  [Symbol.dispose]() {
    this.close()
  }
}

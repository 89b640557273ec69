import type { Freshness, FreshnessEvents } from '../etcd/follow.js'
import { Inbox } from '../util.js'
import type { ConfigEvent, ConfigTree } from './tree.js'
import { ConfigView } from './view.js'

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
  extends ConfigView<ConfigWatchEvents>
  implements AsyncIterable<ConfigEvent>, Freshness
{
  /** The watched prefix, relative to the config prefix ("" for all of it). */
  readonly prefix: string

  /** @internal created by `kit.config.watch()` */
  constructor(tree: ConfigTree, prefix: string, release: () => void) {
    super(tree, release, `config watch of ${JSON.stringify(prefix)}`)
    this.prefix = prefix
    tree.ready.promise.then(this.readied.resolve, this.readied.reject)
    this.subscribe(
      tree.onSubtree(prefix, (event) => {
        if (tree.loaded) this.emit('change', event)
      }),
    )
  }

  /** The keys under the prefix and their text now (empty until `ready`). */
  snapshot(): Map<string, string> {
    const out = new Map<string, string>()
    for (const [key, entry] of this.tree.entries) if (key.startsWith(this.prefix)) out.set(key, entry.text)
    return out
  }

  /** Yields a `put` per key present once the config is read (in key order), then every change, until closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<ConfigEvent, void, undefined> {
    if (this.isClosed) return
    const inbox = new Inbox<[event: ConfigEvent, seq: number]>()
    const unsubscribe = this.tree.onSubtree(this.prefix, (event, seq) => inbox.push([event, seq]))
    const onClose = () => inbox.end()
    this.on('close', onClose)
    try {
      try {
        await this.ready
      } catch {
        return
      }
      const first = this.tree.seq
      const present = [...this.tree.entries]
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
}

// What config values, objects and watches share: the config mirror they read, its subscriptions, `ready`,
// and closing (unsubscribe, release the handle's share of the mirror, reject a pending `ready`).
import type { EventEmitter } from 'node:events'
import { ClosedError } from '../errors.js'
import { View, type ViewEvents } from '../etcd/view.js'
import { deferred, valuesWhenReady } from '../util.js'
import type { ConfigTree } from './tree.js'

export abstract class ConfigView<E extends ViewEvents & Record<keyof E, unknown[]>> extends View<E> {
  /** Resolves once the config has been read from etcd. */
  readonly ready: Promise<void>
  protected readonly tree: ConfigTree
  readonly #release: () => void
  readonly #what: string
  readonly #unsubscribe: Array<() => void> = []
  protected readonly readied = deferred<void>()
  /** Bumped on every change of `current`; lets an iterator skip changes its first value already holds. */
  protected version = 0

  /** `what` names the handle in the `ClosedError` a pending `ready` rejects with on close. */
  constructor(tree: ConfigTree, release: () => void, what: string) {
    super(() => tree.freshness)
    this.tree = tree
    this.#release = release
    this.#what = what
    this.ready = this.readied.promise
    this.ready.catch(() => {}) // closing a never-loaded handle must not raise unhandled rejections
    this.subscribe(tree.onFreshness((reason) => this.emitFreshness(reason)))
  }

  /** `current` may be stale: it comes from the local cache (`configCache`) because etcd has not answered yet. */
  get fromCache(): boolean {
    return this.tree.fromCache
  }

  /** Whether the config has been read (`ready` has resolved). */
  get loaded(): boolean {
    return this.tree.loaded && !this.isClosed
  }

  /** Keeps a mirror subscription until close. */
  protected subscribe(unsubscribe: () => void): void {
    this.#unsubscribe.push(unsubscribe)
  }

  /**
   * Calls `update` once the config is read (at once, `emit` false, when it already is: the constructor
   * is running and nobody listens yet), then resolves `ready`.
   */
  protected whenLoaded(update: (emit: boolean) => void): void {
    if (this.tree.loaded) {
      update(false)
      this.readied.resolve()
    } else {
      this.subscribe(
        this.tree.onLoad(() => {
          update(true)
          this.readied.resolve()
        }),
      )
      this.tree.ready.promise.catch((err: unknown) => this.readied.reject(err))
    }
  }

  /** Yields `current()` once the config is read, then every new value, until closed. */
  protected async *currentValues<T>(current: () => T): AsyncGenerator<T, void, undefined> {
    if (this.isClosed) return
    yield* valuesWhenReady(this as unknown as EventEmitter, this.ready, current, () => this.version)
  }

  protected onClose(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    this.#release()
    this.readied.reject(new ClosedError(this.#what))
  }
}

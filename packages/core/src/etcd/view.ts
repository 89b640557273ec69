// The shell every live view of the kit shares (discovery views, config values, objects and watches):
// freshness read from what it follows, close() once and then `close`, and `using` support.
import { EventEmitter } from 'node:events'
import type { Freshness, FreshnessEvents } from './follow.js'

/** The events every view emits: freshness changes, and `close` once. */
export interface ViewEvents extends FreshnessEvents {
  close: []
}

/**
 * A live view of state the kit mirrors from etcd. Its freshness is that of the mirror it reads (`source`);
 * `close()` runs the subclass's `onClose()` once, then emits `close`.
 */
export abstract class View<E extends ViewEvents & Record<keyof E, unknown[]>>
  extends EventEmitter<E>
  implements Freshness, Disposable
{
  readonly #source: () => Freshness
  #closed = false

  constructor(source: () => Freshness) {
    super()
    this.#source = source
  }

  /**
   * `true` while the view is not known current (see `Freshness`): it then holds the last state known;
   * `stale` and `current` events mark the changes.
   */
  get stale(): boolean {
    return this.#source().stale
  }

  /** The etcd revision the view reflects (decimal): every change up to it is applied. */
  get syncedRevision(): string {
    return this.#source().syncedRevision
  }

  /** When the view was last known current (`Date.now()` ms): now while current; `undefined` before. */
  get syncedAt(): number | undefined {
    return this.#source().syncedAt
  }

  /** Whether `close()` has been called. */
  protected get isClosed(): boolean {
    return this.#closed
  }

  /** Re-emits a freshness change of the source: `undefined` is current again, a reason is stale. */
  protected emitFreshness(reason: string | undefined): void {
    const self = this as unknown as EventEmitter<ViewEvents>
    if (reason === undefined) self.emit('current')
    else self.emit('stale', reason)
  }

  /** Stops the view. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.onClose()
    ;(this as unknown as EventEmitter<ViewEvents>).emit('close')
  }

  /** What closing stops (subscriptions, shared watches); runs once, before `close` is emitted. */
  protected abstract onClose(): void

  [Symbol.dispose]() {
    this.close()
  }
}

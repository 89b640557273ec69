// What a held lock and a won election share: the key this kit holds in a queue, watched until it is given
// up or lost, with the signal that aborts when it is.
import type { ICompare } from 'etcd3'
import { cheapLockReleased, LockLostError } from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { Lease } from '../etcd/session.js'
import type { Logger } from '../ops/logger.js'
import type { LockActivity } from './lock-activity.js'
import { OwnKeyMonitor, type PrefixQueue } from './queue.js'

/** The hub a holder reports to: the kit's locks or its elections. */
export interface HeldKeyHub {
  readonly ks: Keyspace
  readonly log: Logger
  readonly activity: LockActivity
}

/** Where a held key came from: everything a holder needs, named rather than positional. */
export interface HoldContext {
  /** The lock or election name (kit-relative). */
  name: string
  /** The key in etcd, namespace included. */
  fullKey: Buffer
  /** The key's create revision: the lock's fencing token, the election's term. */
  revision: bigint
  /** The revision the queue was last read at: the monitor watches for deletions after it. */
  readRevision: bigint
  lease: Lease
  queue: PrefixQueue
  /** Gives the queue's shared watch back; called once the holder ends. */
  unuse: () => void
}

/** How a holder speaks about being lost: the log line, its fields, and the reason of the signal. */
export interface LossWording {
  log: (name: string, revision: bigint, reason: string) => [fields: Record<string, unknown>, message: string]
  error: (name: string, reason: string) => string
}

/**
 * A key this kit holds (a lock's, or a leader's): `signal` aborts with `LockLostError` when the key or its
 * lease is lost (the monitor tells), or with `LockReleasedError` when it is given up.
 */
export class HeldKey {
  readonly name: string
  /** The key, kit-relative: `{name}/{lease hex}`. */
  readonly key: string
  readonly revision: bigint
  readonly fullKey: Buffer
  readonly lease: Lease
  readonly hub: HeldKeyHub
  readonly #unuse: () => void
  readonly #wording: LossWording
  readonly #controller = new AbortController()
  readonly #monitor: OwnKeyMonitor

  constructor(hub: HeldKeyHub, context: HoldContext, wording: LossWording) {
    const { name, fullKey, revision, readRevision, lease, queue, unuse } = context
    this.hub = hub
    this.name = name
    this.key = `${name}/${lease.hex}`
    this.revision = revision
    this.fullKey = fullKey
    this.lease = lease
    this.#unuse = unuse
    this.#wording = wording
    hub.activity.held(name, this.key, revision)
    this.#monitor = new OwnKeyMonitor(
      hub.ks,
      queue,
      fullKey,
      revision,
      readRevision,
      lease,
      (message, cause) => this.lose(message, cause),
    )
  }

  /** Aborts when the key is given up or lost; reading it checks the lease's local deadline first. */
  get signal(): AbortSignal {
    this.#monitor.check()
    return this.#controller.signal
  }

  /** Compares true while the key is still this holder's (same create revision). */
  get ownKey(): ICompare {
    return { key: this.fullKey, target: 'Create', result: 'Equal', create_revision: this.revision.toString() }
  }

  /** The key is known lost (the monitor told, or a write found it gone). Once only. */
  lose(message: string, cause?: unknown) {
    this.#monitor.stop() // idempotent: the monitor stops itself before it tells
    if (this.#controller.signal.aborted) return
    const [fields, line] = this.#wording.log(this.name, this.revision, message)
    this.hub.log.warn({ ...fields, key: this.fullKey.toString() }, line)
    this.hub.activity.ended(this.name, this.key, 'lost', message)
    this.#controller.abort(new LockLostError(this.#wording.error(this.name, message), cause))
  }

  /** Given up by its holder: the signal aborts with `LockReleasedError` (`why`) unless already lost. */
  giveUp(why: string) {
    this.#monitor.stop()
    if (!this.#controller.signal.aborted) this.#controller.abort(cheapLockReleased(why))
    this.hub.activity.ended(this.name, this.key, 'released')
  }

  /** Gives the queue's watch back (after the key is deleted, or left to its lease). */
  done() {
    this.#unuse()
  }
}

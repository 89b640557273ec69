import type { IEvent, IKeyValue, KVClient } from 'etcd3'
import { type EtcdKitError, etcdError, isTerminal } from '../errors.js'
import type { Logger } from '../ops/logger.js'
import { Backoff } from '../util.js'
import type { Keyspace } from './keyspace.js'
import type { WatchHandle, WatchHub } from './watch.js'

export interface FollowListener {
  /**
   * Every key under the prefix as read at `revision`: the first read (`again` false), or a fresh one after
   * the watch could not go on (`again` true), which the owner compares with what it had.
   */
  onList(kvs: IKeyValue[], revision: bigint, again: boolean): void
  /** Changes after the last read, in revision order, none missed and none repeated. */
  onEvents(events: IEvent[], revision: bigint): void
  /**
   * The prefix cannot be read, and retrying cannot help: permission denied, authentication failed, or a
   * value too large to receive (`error` names the prefix). The follower has stopped. It logs the error
   * unless `reportsErrors`.
   */
  onError(error: EtcdKitError): void
  /** The owner reports `onError`'s errors itself (it may read what it is allowed instead). */
  readonly reportsErrors?: boolean
  /** The follower stopped being known current (see `Freshness`); `reason` says why. */
  onStale?(reason: string): void
  /** The follower is known current again (see `Freshness`). */
  onCurrent?(): void
}

/**
 * Whether a view of etcd (a discovery view, a config value or watch) is known current. It is current once
 * its prefix has been read and its watch confirmed by etcd on a live watch stream: from then on every
 * change etcd commits reaches it in order, as fast as etcd sends it. It is stale before that, while the
 * watch stream is broken or silent (found by the stream's error or its watchdog), and while it reads the
 * prefix again after its watch could not go on (compaction, a cancelled watch, a wiped etcd).
 */
export interface Freshness {
  /** `true` while the view is not known current (see above); it still holds the last state it knew. */
  readonly stale: boolean
  /**
   * The etcd revision the view reflects, decimal: it holds every change up to this revision (the read's
   * revision, then the revision of each change applied). `"0"` before the first read.
   */
  readonly syncedRevision: string
  /**
   * When the view was last known current (`Date.now()` milliseconds): now while it is current, and when its
   * watch stream was last heard from while it is stale. `undefined` until it is current the first time.
   */
  readonly syncedAt: number | undefined
}

/** The events of a `Freshness`: `stale` when it stops being known current, `current` when it is again. */
export interface FreshnessEvents {
  stale: [reason: string]
  current: []
}

/**
 * Follows every key under a prefix, the way discovery, configuration and election observers need it: read
 * the prefix at revision R, then watch it from R + 1 on the kit's one watch stream (no gap between the two,
 * no duplicates); when the watch cannot go on (its revision compacted, etcd cancelled it, etcd was wiped)
 * read again and watch anew; retry a failed read with backoff until closed — except a refusal that
 * retrying cannot change (permission denied, authentication failed, too large), which stops the follower
 * and is reported to its owner. It keeps the `Freshness` of what it follows, for every view built on it.
 */
export class PrefixFollower implements Freshness {
  readonly #backoff = new Backoff(50, 2_000)
  #watch: WatchHandle | undefined
  #timer: NodeJS.Timeout | undefined
  #listed = false
  #closed = false
  #current = false
  #revision = 0n
  /** When it was last known current, while stale (`undefined`: never yet). */
  #lastCurrent: number | undefined
  /** The prefix with the namespace, for log lines and errors: what an operator finds in etcd. */
  readonly #fullPrefix: string

  constructor(
    private readonly ks: Keyspace,
    private readonly hub: WatchHub,
    private readonly log: Logger,
    /** Namespace-relative prefix. */
    readonly prefix: string,
    /** What follows, for log lines: "config watch", "discovery watch of \"orders\"". */
    private readonly what: string,
    private readonly listener: FollowListener,
    /** Follow the one key `prefix`, not every key starting with it (a role may be granted just that key). */
    private readonly exact = false,
  ) {
    this.#fullPrefix = ks.full(prefix)
  }

  get stale(): boolean {
    return !this.#current
  }

  get syncedRevision(): string {
    return this.#revision.toString()
  }

  get syncedAt(): number | undefined {
    return this.#current ? Date.now() : this.#lastCurrent
  }

  /** Starts the first read (idempotent). */
  start() {
    if (this.#listed || this.#watch || this.#timer || this.#closed) return
    this.#list()
  }

  close() {
    if (this.#current) this.#lastCurrent = Date.now()
    this.#current = false // no longer kept current (no event: the owner is closing)
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#watch?.cancel()
    this.#watch = undefined
  }

  /** `via`: the member to read from (see `WatchHub.reader`); etcd3's pick per call when undefined. */
  #list(via?: KVClient) {
    this.#timer = undefined
    if (this.#closed) return
    ;(this.exact ? this.ks.get(this.prefix, via) : this.ks.list(this.prefix, via))
      .then(({ kvs, revision }) => {
        if (this.#closed) return
        this.#backoff.reset()
        const { key, range_end } = this.ks.range(this.prefix)
        this.#watch = this.hub.watch(
          { key, ...(this.exact ? {} : { rangeEnd: range_end }), startRevision: revision + 1n },
          {
            onEvents: (events, rev) => {
              this.#revision = BigInt(events[events.length - 1]!.kv.mod_revision)
              this.listener.onEvents(events, rev)
            },
            onReset: (reason) => {
              this.log.warn({ prefix: this.#fullPrefix, reason }, `${this.what} reset; reading again`)
              this.#watch = undefined
              this.#setStale(`${this.what} reset: ${reason}`, Date.now())
              // on the member whose stream just answered (the reset): not one still cut off
              this.#list(this.hub.reader())
            },
            onStale: (reason, since) => this.#setStale(reason, since),
            onCurrent: () => this.#setCurrent(),
          },
        )
        const again = this.#listed
        this.#listed = true
        this.#revision = revision
        try {
          this.listener.onList(kvs, revision, again)
        } catch (err) {
          this.log.error({ err, prefix: this.#fullPrefix }, `${this.what}: a listener threw`)
        }
      })
      .catch((err: unknown) => {
        if (this.#closed) return
        if (isTerminal(err)) {
          const error = etcdError(
            err,
            `reading ${this.what} (${this.exact ? 'key' : 'key prefix'} ${JSON.stringify(this.#fullPrefix)})`,
          )
          this.close()
          if (!this.listener.reportsErrors)
            this.log.error({ err: error, prefix: this.#fullPrefix }, `${this.what}: cannot read; stopped`)
          this.listener.onError(error)
          return
        }
        const delay = this.#backoff.next()
        this.log.debug({ err, prefix: this.#fullPrefix, delay }, `${this.what}: could not read; retrying`)
        this.#timer = setTimeout(() => this.#list(), delay)
      })
  }

  #setStale(reason: string, since: number) {
    if (!this.#current || this.#closed) return
    this.#current = false
    this.#lastCurrent = since
    this.log.debug({ prefix: this.#fullPrefix, reason }, `${this.what} is stale`)
    this.#tell(() => this.listener.onStale?.(reason))
  }

  #setCurrent() {
    if (this.#current || this.#closed) return
    this.#current = true
    this.#tell(() => this.listener.onCurrent?.())
  }

  #tell(call: () => void) {
    try {
      call()
    } catch (err) {
      this.log.error({ err, prefix: this.#fullPrefix }, `${this.what}: a listener threw`)
    }
  }
}

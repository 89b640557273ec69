import type { IEvent, IKeyValue } from 'etcd3'
import { type EtcdKitError, etcdError, isTerminal } from './errors.js'
import type { Keyspace } from './keyspace.js'
import type { Logger } from './logger.js'
import { Backoff } from './util.js'
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
   * value too large to receive (`error` names the prefix). The follower has stopped.
   */
  onError(error: EtcdKitError): void
}

/**
 * Follows every key under a prefix, the way discovery, configuration and election observers need it: read
 * the prefix at revision R, then watch it from R + 1 on the kit's one watch stream (no gap between the two,
 * no duplicates); when the watch cannot go on (its revision compacted, etcd cancelled it, etcd was wiped)
 * read again and watch anew; retry a failed read with backoff until closed — except a refusal that
 * retrying cannot change (permission denied, authentication failed, too large), which stops the follower
 * and is reported to its owner.
 */
export class PrefixFollower {
  readonly #backoff = new Backoff(50, 2_000)
  #watch: WatchHandle | undefined
  #timer: NodeJS.Timeout | undefined
  #listed = false
  #closed = false

  constructor(
    private readonly ks: Keyspace,
    private readonly hub: WatchHub,
    private readonly log: Logger,
    /** Namespace-relative prefix. */
    readonly prefix: string,
    /** What follows, for log lines: "config watch", "discovery watch of \"orders\"". */
    private readonly what: string,
    private readonly listener: FollowListener,
  ) {}

  /** Starts the first read (idempotent). */
  start() {
    if (this.#listed || this.#watch || this.#timer || this.#closed) return
    this.#list()
  }

  close() {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#watch?.cancel()
    this.#watch = undefined
  }

  #list() {
    this.#timer = undefined
    if (this.#closed) return
    this.ks
      .list(this.prefix)
      .then(({ kvs, revision }) => {
        if (this.#closed) return
        this.#backoff.reset()
        const { key, range_end } = this.ks.range(this.prefix)
        this.#watch = this.hub.watch(
          { key, rangeEnd: range_end, startRevision: revision + 1n },
          {
            onEvents: (events, rev) => this.listener.onEvents(events, rev),
            onReset: (reason) => {
              this.log.warn({ prefix: this.prefix, reason }, `${this.what} reset; reading again`)
              this.#watch = undefined
              this.#list()
            },
          },
        )
        const again = this.#listed
        this.#listed = true
        try {
          this.listener.onList(kvs, revision, again)
        } catch (err) {
          this.log.error({ err, prefix: this.prefix }, `${this.what}: a listener threw`)
        }
      })
      .catch((err: unknown) => {
        if (this.#closed) return
        if (isTerminal(err)) {
          const error = etcdError(err, `reading ${this.what} (key prefix ${JSON.stringify(this.prefix)})`)
          this.log.error({ err: error, prefix: this.prefix }, `${this.what}: cannot read; stopped`)
          this.close()
          this.listener.onError(error)
          return
        }
        const delay = this.#backoff.next()
        this.log.debug({ err, prefix: this.prefix, delay }, `${this.what}: could not read; retrying`)
        this.#timer = setTimeout(() => this.#list(), delay)
      })
  }
}

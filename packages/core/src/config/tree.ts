import type { IEvent, IKeyValue } from 'etcd3'
import { ClosedError, type EtcdKitError } from '../errors.js'
import { type Freshness, PrefixFollower } from '../etcd/follow.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { WatchHub } from '../etcd/watch.js'
import type { Logger } from '../ops/logger.js'
import { deferred } from '../util.js'
import type { ConfigCache } from './cache.js'
import { decodeEntry, type TreeEntry } from './entry.js'

/** One change under the config prefix, as a subtree watch sees it. */
export interface ConfigEvent {
  type: 'put' | 'delete'
  /** The key relative to the config prefix: `rate-limit`, `orders/rate-limit`. */
  key: string
  /** The new text; `undefined` for a delete. */
  value: string | undefined
  /**
   * The etcd revision of the change (decimal, like `Instance.modRevision`); after a relist, the revision of
   * the read for deletions it found.
   */
  revision: string
}

type KeyListener = (revision: string) => void
/** Told when the tree stops being known current (`reason`), and when it is again (`undefined`). */
type FreshnessListener = (staleReason: string | undefined) => void
type EventListener = (event: ConfigEvent, seq: number) => void

/** One range the mirror follows (the whole prefix, or in partial mode one part of it). */
interface Part {
  /** Relative to the config prefix: "" (all), `{service}/`, or one shared key. */
  rel: string
  /** Whether a key (relative to the config prefix) falls in this part. */
  owns(key: string): boolean
  follower: PrefixFollower
  /** Read at least once. */
  listed: boolean
  /** etcd refused it for good (a shared key the role may not read). */
  refused: boolean
}

/**
 * A mirror of the whole config prefix, shared by every config handle of a kit: ONE range read of the prefix
 * at revision R, then ONE watch from R + 1 on the kit's watch stream; the prefix is read again when the
 * watch cannot go on (compaction, a cancelled watch, a wiped etcd). Handles subscribe to the keys they read
 * and are told, in revision order, when one of them changes. Config trees are small (text values read by
 * services), so keeping all of it costs little and lets handles opened later answer without any I/O.
 */
export class ConfigTree {
  readonly entries = new Map<string, TreeEntry>()
  readonly ready = deferred<void>()
  loaded = false
  /** Why the mirror stopped following the config prefix (permission denied, ...), if it did. */
  error: EtcdKitError | undefined
  /** Count of events dispatched to subtree listeners, so iterators can drop what their snapshot holds. */
  seq = 0
  /**
   * The entries come from the local cache (`configCache`), not (yet) from etcd: etcd did not answer within
   * the cache's `wait`. Cleared when a read of etcd is applied.
   */
  fromCache = false
  readonly #cache: ConfigCache | undefined
  #cacheTimer: NodeJS.Timeout | undefined
  readonly #keyed = new Map<string, Set<KeyListener>>()
  readonly #subtrees = new Map<EventListener, string>()
  readonly #onLoad = new Set<() => void>()
  readonly #batches = new Set<(revision: string) => void>()
  readonly #onFreshness = new Set<FreshnessListener>()
  readonly #onError = new Set<(error: EtcdKitError) => void>()
  /**
   * What the mirror follows: the whole prefix; or, when the kit's role may not read all of it, the
   * service's own subtree and each shared key a handle reads, apart (see `#readWhatIsAllowed`).
   */
  #parts: Part[] = []
  /** The whole prefix was refused: following the allowed parts only. */
  #partial = false
  /** Shared keys etcd refused in partial mode, for the one warning that names them. */
  readonly #refusedKeys: string[] = []
  readonly #hub: WatchHub
  #closed = false

  constructor(
    readonly prefix: string,
    readonly ks: Keyspace,
    hub: WatchHub,
    private readonly log: Logger,
    cache?: ConfigCache,
    /** The kit's service: its `{prefix}{service}/` subtree is what a least-privilege role may read. */
    private readonly service?: string,
  ) {
    this.ready.promise.catch(() => {}) // a tree closed before its first read must not raise unhandled rejections
    this.#cache = cache
    this.#hub = hub
    this.#parts = [this.#follow('', false)]
    if (cache) {
      this.#cacheTimer = setTimeout(() => this.#serveCache(cache), cache.wait)
      this.#cacheTimer.unref()
    }
    // Start on the next microtask: handles opened in the same tick all wait for this one read.
    queueMicrotask(() => {
      for (const part of this.#parts) part.follower.start()
    })
  }

  /**
   * A follower of `{prefix}{rel}` (every key under it, or with `exact` that one key), whose reads and
   * changes go into the mirror: the whole prefix (`rel` ""), or one part of it in partial mode.
   */
  #follow(rel: string, exact: boolean): Part {
    const whole = rel === '' && !exact
    const part: Part = {
      rel,
      owns: whole ? () => true : exact ? (key) => key === rel : (key) => key.startsWith(rel),
      listed: false,
      refused: false,
      follower: undefined as unknown as PrefixFollower,
    }
    const what = whole ? 'config watch' : `config watch of ${JSON.stringify(this.prefix + rel)}`
    part.follower = new PrefixFollower(
      this.ks,
      this.#hub,
      this.log,
      this.prefix + rel,
      what,
      {
        onList: (kvs, revision, again) => {
          const first = !part.listed
          part.listed = true
          // after the cache was served, the first read of etcd is applied like a relist: as changes
          if (again || this.loaded) this.#relist(kvs, revision.toString(), part)
          else this.#load(kvs)
          if (first && this.#partial) this.#settled()
          this.#cache?.save(this.entries, revision.toString())
        },
        onEvents: (events) => {
          this.#onEvents(events)
          const last = events[events.length - 1]
          if (last) this.#cache?.save(this.entries, last.kv.mod_revision)
        },
        onStale: (reason) => {
          if (this.#staleParts() === 1) this.#tellFreshness(reason)
        },
        onCurrent: () => {
          if (this.#staleParts() === 0) this.#tellFreshness(undefined)
        },
        reportsErrors: true,
        onError: (error) => {
          if (whole && error.code === 'ETCDKIT_PERMISSION_DENIED' && this.service !== undefined) {
            this.#readWhatIsAllowed(error)
            return
          }
          if (exact && this.#partial) {
            // a shared key this role may not read: its handles keep their default (said once, below)
            part.refused = true
            this.#refusedKeys.push(this.ks.full(this.prefix + rel))
            if (this.loaded)
              this.log.warn(
                { key: this.ks.full(this.prefix + rel) },
                'cannot read the shared config key (permission denied): values read it as not set',
              )
            else this.#settled()
            if (this.#staleParts() === 0) this.#tellFreshness(undefined)
            return
          }
          this.log.error(
            { err: error, prefix: this.ks.full(this.prefix + rel) },
            `${what}: cannot read; stopped`,
          )
          this.error = error
          this.ready.reject(error)
          for (const listener of this.#onError) listener(error)
        },
      },
      exact,
    )
    return part
  }

  /**
   * The role may not read the whole config prefix (a multi-tenant etcd where each service may read only
   * `config/{service}/`): follow what it may read instead, the service's subtree and each shared key a
   * handle reads, each on its own range and watch. Only then: when the whole prefix may be read, one
   * range and one watch serve every handle, however many keys they read.
   */
  #readWhatIsAllowed(refused: EtcdKitError) {
    if (this.#partial || this.#closed) return
    this.#partial = true
    this.#refused = refused
    const own = this.#follow(`${this.service}/`, false)
    this.#parts = [own]
    own.follower.start()
    for (const key of this.#keyed.keys()) this.#followShared(key)
  }

  /** In partial mode, follows the shared key `key` on its own (once). */
  #followShared(key: string) {
    if (!this.#partial || this.#closed || key.startsWith(`${this.service}/`)) return
    if (this.#parts.some((p) => p.rel === key)) return
    const part = this.#follow(key, true)
    this.#parts.push(part)
    part.follower.start()
  }

  /** Why the whole prefix was refused (partial mode). */
  #refused: EtcdKitError | undefined

  /** In partial mode, once every part read at the start has been read or refused: loaded, and one warning. */
  #settled() {
    if (this.loaded || !this.#parts.every((p) => p.listed || p.refused)) return
    this.log.warn(
      {
        err: this.#refused,
        prefix: this.ks.full(this.prefix),
        reading: this.ks.full(`${this.prefix}${this.service}/`),
        refusedKeys: this.#refusedKeys,
      },
      `cannot read the config prefix ${JSON.stringify(this.ks.full(this.prefix))} (permission denied): reading only ${JSON.stringify(this.ks.full(`${this.prefix}${this.service}/`))} and the shared keys values ask for${this.#refusedKeys.length > 0 ? `; not allowed, read as not set: ${this.#refusedKeys.map((k) => JSON.stringify(k)).join(', ')}` : ''}`,
    )
    this.#loaded()
  }

  /** Parts that are followed and not known current. */
  #staleParts(): number {
    return this.#parts.filter((p) => !p.refused && p.follower.stale).length
  }

  /** Whether the mirror is known current, the revision it reflects, and when it was last known current. */
  get freshness(): Freshness {
    const [first, ...rest] = this.#parts.filter((p) => !p.refused)
    if (!first) return { stale: false, syncedRevision: '0', syncedAt: Date.now() }
    if (rest.length === 0) return first.follower
    const all = [first, ...rest].map((p) => p.follower)
    const at = all.map((f) => f.syncedAt)
    return {
      stale: all.some((f) => f.stale),
      // every part holds every change up to its own revision: the mirror, up to the lowest
      syncedRevision: all
        .map((f) => BigInt(f.syncedRevision))
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))[0]!
        .toString(),
      syncedAt: at.some((x) => x === undefined) ? undefined : Math.min(...(at as number[])),
    }
  }

  /** Calls `listener` when the mirror stops being known current and when it is again; returns the unsubscribe. */
  onFreshness(listener: FreshnessListener): () => void {
    this.#onFreshness.add(listener)
    return () => this.#onFreshness.delete(listener)
  }

  /** Calls `listener` when any of `keys` (relative to the prefix) changes; returns the unsubscribe. */
  onKeys(keys: readonly string[], listener: KeyListener): () => void {
    for (const key of keys) {
      const set = this.#keyed.get(key) ?? new Set()
      this.#keyed.set(key, set)
      set.add(listener)
      this.#followShared(key)
    }
    return () => {
      for (const key of keys) {
        const set = this.#keyed.get(key)
        set?.delete(listener)
        if (set?.size === 0) this.#keyed.delete(key)
      }
    }
  }

  /** Calls `listener` for every change of a key starting with `prefix`; returns the unsubscribe. */
  onSubtree(prefix: string, listener: EventListener): () => void {
    this.#subtrees.set(listener, prefix)
    return () => this.#subtrees.delete(listener)
  }

  /**
   * Calls `listener` after each batch of changes has been applied: the changes of one revision (every
   * change of one etcd txn arrives in one watch response, with one revision) or one relist, so a reader of several keys can act
   * once on a consistent mirror. Returns the unsubscribe.
   */
  onBatch(listener: (revision: string) => void): () => void {
    this.#batches.add(listener)
    return () => this.#batches.delete(listener)
  }

  /** Calls `listener` when the mirror stops for an error retrying cannot fix; returns the unsubscribe. */
  onError(listener: (error: EtcdKitError) => void): () => void {
    this.#onError.add(listener)
    return () => this.#onError.delete(listener)
  }

  /** Calls `listener` once, when the first read has been applied (and before `ready` settles). */
  onLoad(listener: () => void): () => void {
    this.#onLoad.add(listener)
    return () => this.#onLoad.delete(listener)
  }

  close() {
    if (this.#closed) return
    this.#closed = true
    for (const part of this.#parts) part.follower.close()
    clearTimeout(this.#cacheTimer)
    this.#cache?.flush()
    this.ready.reject(new ClosedError('the config watch'))
  }

  /** etcd has not answered within the cache's wait: serve the cached mirror, and say so. */
  #serveCache(cache: ConfigCache) {
    this.#cacheTimer = undefined
    if (this.loaded || this.#closed) return
    const cached = cache.load()
    if (!cached) return
    for (const [key, entry] of cached.entries) this.entries.set(key, entry)
    this.fromCache = true
    this.log.warn(
      { file: cache.file, keys: cached.entries.size, revision: cached.revision, savedAt: cached.savedAt },
      'etcd has not answered: serving cached config values (stale) until it does',
    )
    this.#loaded()
  }

  #tellFreshness(staleReason: string | undefined) {
    for (const listener of this.#onFreshness) {
      try {
        listener(staleReason)
      } catch (err) {
        this.log.error({ err }, 'a config listener threw')
      }
    }
  }

  #name(key: Buffer): string {
    return this.ks.name(key).slice(this.prefix.length)
  }

  #load(kvs: IKeyValue[]) {
    clearTimeout(this.#cacheTimer)
    if (kvs.length === 0 && this.#cache?.keepOnEmpty && !this.#partial) {
      // an empty etcd at start after a non-empty cache: the same protection as an empty relist
      const cached = this.#cache.load()
      if (cached && cached.entries.size > 0) {
        for (const [key, entry] of cached.entries) this.entries.set(key, entry)
        this.fromCache = true
        this.log.warn(
          { file: this.#cache.file, keys: cached.entries.size },
          'etcd has no config at all; keeping the cached values (configCache.keepOnEmpty)',
        )
        this.#loaded()
        return
      }
    }
    for (const kv of kvs) this.entries.set(this.#name(kv.key), decodeEntry(kv))
    // in partial mode, loaded once every part read at the start has answered (`#settled`)
    if (!this.#partial) this.#loaded()
  }

  #loaded() {
    this.loaded = true
    for (const listener of this.#onLoad) listener()
    this.#onLoad.clear()
    this.ready.resolve()
  }

  /** Applies a fresh read after a reset: every difference from the mirror becomes a change, in key order. */
  #relist(kvs: IKeyValue[], revision: string, part: Part) {
    if (kvs.length === 0 && this.entries.size > 0 && this.#cache?.keepOnEmpty && !this.#partial) {
      this.log.warn(
        { prefix: this.ks.full(this.prefix), keys: this.entries.size, revision },
        'etcd has no config at all now; keeping the last values (configCache.keepOnEmpty)',
      )
      return
    }
    if (this.fromCache) {
      this.fromCache = false
      this.log.info(
        { prefix: this.ks.full(this.prefix), revision },
        'etcd answered: config values are live again',
      )
    }
    const fresh = new Map<string, TreeEntry>()
    for (const kv of kvs) fresh.set(this.#name(kv.key), decodeEntry(kv))
    const gone = [...this.entries.keys()].filter((k) => part.owns(k) && !fresh.has(k))
    for (const key of gone) this.#apply(key, undefined, revision)
    for (const [key, entry] of fresh) {
      const old = this.entries.get(key)
      if (old?.revision !== entry.revision || old.text !== entry.text) this.#apply(key, entry, entry.revision)
    }
    this.#batched(revision)
  }

  #batched(revision: string) {
    for (const listener of this.#batches) {
      try {
        listener(revision)
      } catch (err) {
        this.log.error({ err }, 'a config listener threw')
      }
    }
  }

  #onEvents(events: IEvent[]) {
    // one batch per revision: the changes of one txn share it and arrive in one response, in order
    let revision: string | undefined
    for (const ev of events) {
      if (revision !== undefined && ev.kv.mod_revision !== revision) this.#batched(revision)
      revision = ev.kv.mod_revision
      const key = this.#name(ev.kv.key)
      if (ev.type === 'Delete') this.#apply(key, undefined, ev.kv.mod_revision)
      else this.#apply(key, decodeEntry(ev.kv), ev.kv.mod_revision)
    }
    if (revision !== undefined) this.#batched(revision)
  }

  #apply(key: string, entry: TreeEntry | undefined, revision: string) {
    if (entry) this.entries.set(key, entry)
    else if (!this.entries.delete(key)) return
    const listeners = this.#keyed.get(key)
    if (listeners) {
      for (const listener of listeners) {
        try {
          listener(revision)
        } catch (err) {
          this.log.error({ err, key: this.ks.full(this.prefix + key) }, 'a config listener threw')
        }
      }
    }
    if (this.#subtrees.size === 0) return
    const seq = ++this.seq
    const event: ConfigEvent = { type: entry ? 'put' : 'delete', key, value: entry?.text, revision }
    for (const [listener, prefix] of this.#subtrees) {
      if (!key.startsWith(prefix)) continue
      try {
        listener(event, seq)
      } catch (err) {
        this.log.error({ err, key: this.ks.full(this.prefix + key) }, 'a config listener threw')
      }
    }
  }
}

import { performance } from 'node:perf_hooks'
import type { IEvent, IKeyValue, IRangeRequest } from 'etcd3'
import { isTerminal, show } from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { WatchHandle, WatchHub } from '../etcd/watch.js'
import type { Logger } from '../ops/logger.js'
import { Backoff, sleep } from '../util.js'

/**
 * How long a prefix's watch outlives its last user. Contenders re-acquire in a loop: cancelling the watch
 * between two acquisitions would create a watch per acquisition, which is what makes Go's Mutex stall.
 */
const LINGER_MS = 30_000
/** Deletions remembered per prefix, to close the race between a read and the watch (one per contender). */
const RECORD_SIZE = 1_024
/**
 * Keys ahead of ours read at once. A waiter that knows every key ahead of it needs no read when its turn
 * comes: the prefix watch tells it of each deletion (see `waitTurn`). Behind a longer queue it waits for
 * its predecessor and reads again, as Go's Mutex does.
 */
export const AHEAD_LIMIT = 16
/**
 * A watch created "from now" can land in etcd's unsynced watcher group, whose events come up to 100 ms late:
 * etcd reads its revision, then registers the watch, and a write applied in between leaves the watch behind.
 * Nothing in the reply tells. Until the watch has delivered an event (an unsynced watch delivers nothing
 * before etcd's catch-up pass) or `UNPROVEN_MS` has passed since it was created (by then that pass has run),
 * waiters read again every `POLL_MS` instead of trusting it alone.
 */
const UNPROVEN_MS = 150
/**
 * Deletions the prefix watch may deliver in a row while nobody in this kit listens before it is cancelled.
 * An idle kit (its job done, its lock released) would otherwise receive every handoff of a long queue: with
 * C contenders in C kits, C deliveries per handoff and C² per round. A contender looping on the lock
 * re-queues within a deletion or two and keeps the watch.
 */
const IDLE_DELETIONS = AHEAD_LIMIT
const POLL_MS = 10
const NOTHING_TO_STOP = () => {}

/** What to do when a watched key is deleted, or when the watch cannot vouch for it any more. */
export interface DeleteListener {
  /** The key was deleted at `revision` (after the create revision it was registered with). */
  deleted(revision: bigint): void
  /** The watch was reset (compaction, cancelled by etcd, etcd wiped): deletions may have been missed. */
  reset(): void
}

interface Registered {
  after: bigint
  listener: DeleteListener
}

/**
 * The deletions under one lock or election prefix (`{name}/`), as one kit sees them: ONE long-lived
 * deletes-only watch on the prefix (on the kit's watch stream), shared by every waiter and holder of that
 * name in the kit, and a short record of recent deletions. A waiter reads its predecessor at revision R and
 * then waits for that key's deletion; the deletion may reach us (on the watch stream) before the read's
 * answer does (on another call), so a waiter first looks in the record.
 */
export class PrefixQueue {
  readonly prefix: string
  /** Reads made by waiters after being woken (the "one read per release"); for tests and benchmarks. */
  wakeReads = 0
  readonly #hub: WatchHub
  readonly #log: Logger
  readonly #onIdle: (q: PrefixQueue) => void
  readonly #range: { key: Buffer; range_end: Buffer }
  /** key (latin1 of the full key) -> revision of its latest deletion seen */
  readonly #record = new Map<string, bigint>()
  readonly #listeners = new Map<string, Set<Registered>>()
  #handle: WatchHandle | undefined
  /** The first revision the current watch delivers; undefined until etcd has confirmed it. */
  #from: bigint | undefined
  /** Until when (performance.now()) the watch may still be in etcd's unsynced group; 0 once proven. */
  #unprovenUntil = 0
  /** Before confirmation: the first revision the callers of `cover()` so far need delivered. */
  #needed: bigint | undefined
  #users = 0
  #linger: NodeJS.Timeout | undefined
  /** Deletions delivered in a row with no listener registered (see `IDLE_DELETIONS`). */
  #idle = 0
  /** Single-key watches of deep waiters (see `waitKeyDeleted`), cancelled on close. */
  readonly #keyWatches = new Set<() => void>()
  #closed = false

  constructor(ks: Keyspace, hub: WatchHub, log: Logger, prefix: string, onIdle: (q: PrefixQueue) => void) {
    this.#hub = hub
    this.#log = log
    this.prefix = prefix
    this.#onIdle = onIdle
    this.#range = ks.range(prefix)
  }

  get closed() {
    return this.#closed
  }

  /** [key, range_end) of the prefix, for reads. */
  get range(): { key: Buffer; range_end: Buffer } {
    return this.#range
  }

  /** Marks the queue in use (its watch stays); call the returned function (idempotent) when done. */
  use(): () => void {
    this.#users++
    clearTimeout(this.#linger)
    this.#linger = undefined
    let done = false
    return () => {
      if (done) return
      done = true
      if (--this.#users > 0 || this.#closed) return
      this.#linger = setTimeout(() => this.close(), LINGER_MS)
      this.#linger.unref()
    }
  }

  /**
   * Makes the watch deliver every deletion after `revision`, the revision of a read just made. False when
   * the live watch started after it: the caller must read again (a new read is at least as recent as the
   * revision the watch started from, so the second call is true).
   *
   * The watch starts from "now", not from `revision + 1`: a watch starting at a revision etcd has already
   * passed (other contenders write all the time) lands in etcd's unsynced watcher group, whose events come
   * up to 100 ms late. Until etcd confirms the watch, callers are told yes and their listeners registered;
   * if it then starts after a revision one of them needed, they are all reset (they read again).
   */
  cover(revision: bigint): boolean {
    if (this.#closed) return false
    if (this.#from !== undefined) return revision + 1n >= this.#from
    if (this.#needed === undefined || revision + 1n < this.#needed) this.#needed = revision + 1n
    if (!this.#handle) this.#unprovenUntil = Number.POSITIVE_INFINITY
    this.#handle ??= this.#hub.watch(
      { ...this.#rangeSpec(), startRevision: 0n, deletesOnly: true },
      {
        onEvents: (events) => this.#onEvents(events),
        onReset: (reason) => this.#onReset(reason),
        onCreated: (at) => this.#onCreated(at),
      },
    )
    return true
  }

  /** The latest deletion of `key` recorded after `createRevision`, if any. */
  deletedAfter(key: Buffer, createRevision: bigint): bigint | undefined {
    const rev = this.#record.get(key.toString('latin1'))
    return rev !== undefined && rev > createRevision ? rev : undefined
  }

  /**
   * Calls `listener.deleted` once `key` (the incarnation created at `createRevision`) is deleted, at once
   * if the record already has it. Returns the function that unregisters.
   */
  onDelete(key: Buffer, createRevision: bigint, listener: DeleteListener): () => void {
    const name = key.toString('latin1')
    const reg: Registered = { after: createRevision, listener }
    const recorded = this.#record.get(name)
    if (recorded !== undefined && recorded > createRevision) {
      listener.deleted(recorded)
      return () => {}
    }
    let set = this.#listeners.get(name)
    if (!set) {
      set = new Set()
      this.#listeners.set(name, set)
    }
    set.add(reg)
    return () => {
      const s = this.#listeners.get(name)
      if (s?.delete(reg) && s.size === 0) this.#listeners.delete(name)
    }
  }

  /**
   * Resolves with the revision of the last of the deletions of `keys` (as read, each after its create
   * revision), i.e. the revision from which none of them exists; with `undefined` when the watch was reset
   * and the caller must read again. Rejects with `OwnKeyGone` when `own` (created at `ownRevision`) is
   * deleted first — the watch delivers deletions in revision order, so if it was not, it existed when the
   * last of `keys` went — and with the reason of the first of `signals` to abort.
   */
  waitAllDeleted(
    keys: readonly IKeyValue[],
    own: Buffer,
    ownRevision: bigint,
    signals: readonly AbortSignal[],
  ): Promise<bigint | undefined> {
    for (const s of signals) if (s.aborted) return Promise.reject(s.reason)
    return new Promise<bigint | undefined>((resolve, reject) => {
      const offs: Array<() => void> = []
      let left = keys.length
      let last = 0n
      let done = false
      const finish = () => {
        done = true
        for (const off of offs) off()
        for (const s of signals) s.removeEventListener('abort', onAbort)
      }
      const onAbort = (event: Event) => {
        if (done) return
        finish()
        reject((event.target as AbortSignal).reason)
      }
      const reset = () => {
        if (done) return
        finish()
        resolve(undefined)
      }
      offs.push(this.#poll(reset))
      offs.push(
        this.onDelete(own, ownRevision, {
          deleted: () => {
            if (done) return
            finish()
            reject(new OwnKeyGone())
          },
          reset,
        }),
      )
      for (const kv of keys) {
        if (done) break
        offs.push(
          this.onDelete(kv.key, BigInt(kv.create_revision), {
            deleted: (rev) => {
              if (done) return
              if (rev > last) last = rev
              if (--left > 0) return
              finish()
              resolve(last)
            },
            reset,
          }),
        )
      }
      if (!done) for (const s of signals) s.addEventListener('abort', onAbort, { once: true })
      else for (const off of offs) off()
    })
  }

  /**
   * Resolves once `key` (created at `createRevision`) is deleted — or with `false` when the watch was
   * reset and the caller must read again. Rejects with the reason of the first of `signals` to abort.
   */
  waitDelete(key: Buffer, createRevision: bigint, signals: readonly AbortSignal[]): Promise<boolean> {
    for (const s of signals) if (s.aborted) return Promise.reject(s.reason)
    if (this.deletedAfter(key, createRevision) !== undefined) return Promise.resolve(true)
    return new Promise<boolean>((resolve, reject) => {
      // plain listeners, not AbortSignal.any(): this runs once per handoff
      const cleanup = () => {
        off()
        stopPoll()
        for (const s of signals) s.removeEventListener('abort', onAbort)
      }
      const onAbort = (event: Event) => {
        cleanup()
        reject((event.target as AbortSignal).reason)
      }
      const readAgain = () => {
        cleanup()
        resolve(false)
      }
      // not in the record (checked above): `deleted` is not called before onDelete returns
      const off = this.onDelete(key, createRevision, {
        deleted: () => {
          cleanup()
          resolve(true)
        },
        reset: readAgain,
      })
      const stopPoll = this.#poll(readAgain)
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Resolves with true once `key` (created at `createRevision`, which is at most `after`) is deleted after
   * revision `after` — or with false when its watch was reset and the caller must read again. Rejects with
   * the reason of the first of `signals` to abort. For a waiter deep in the queue: it watches that one key,
   * not the prefix, so a deletion elsewhere in a long queue does not reach it. Its watch starts at
   * `after + 1`, a revision etcd may have passed (served from the unsynced group, up to 100 ms late): a deep
   * waiter has a queue's length of handoffs before its turn, and this watch only brings it to the front.
   */
  waitKeyDeleted(
    key: Buffer,
    createRevision: bigint,
    after: bigint,
    signals: readonly AbortSignal[],
  ): Promise<boolean> {
    for (const s of signals) if (s.aborted) return Promise.reject(s.reason)
    if (this.deletedAfter(key, createRevision) !== undefined) return Promise.resolve(true)
    if (this.#closed) return Promise.resolve(false)
    return new Promise<boolean>((resolve, reject) => {
      let done = false
      const finish = () => {
        done = true
        handle.cancel()
        this.#keyWatches.delete(stop)
        for (const s of signals) s.removeEventListener('abort', onAbort)
      }
      const stop = () => {
        if (done) return
        finish()
        resolve(false)
      }
      const onAbort = (event: Event) => {
        if (done) return
        finish()
        reject((event.target as AbortSignal).reason)
      }
      const handle = this.#hub.watch(
        { key, startRevision: after + 1n, deletesOnly: true },
        {
          onEvents: (events) => {
            if (done || !events.some((ev) => ev.type === 'Delete')) return
            finish()
            resolve(true)
          },
          onReset: stop,
        },
      )
      this.#keyWatches.add(stop)
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Cancels the watch and forgets everything. Idempotent. */
  close() {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#linger)
    this.#handle?.cancel()
    this.#handle = undefined
    const all = [...this.#listeners.values()].flatMap((s) => [...s])
    this.#listeners.clear()
    for (const r of all) r.listener.reset()
    for (const stop of [...this.#keyWatches]) stop()
    this.#onIdle(this)
  }

  /**
   * While the watch is unproven (`UNPROVEN_MS`), calls `readAgain` after `POLL_MS`; returns the function
   * that stops it. A no-op otherwise.
   */
  #poll(readAgain: () => void): () => void {
    if (this.#unprovenUntil === 0) return NOTHING_TO_STOP
    if (performance.now() >= this.#unprovenUntil) {
      this.#unprovenUntil = 0
      return NOTHING_TO_STOP
    }
    const timer = setTimeout(readAgain, POLL_MS)
    return () => clearTimeout(timer)
  }

  #rangeSpec() {
    return { key: this.#range.key, rangeEnd: this.#range.range_end }
  }

  #onEvents(events: IEvent[]) {
    // an unsynced watch delivers nothing until etcd's catch-up pass has synced it
    this.#unprovenUntil = 0
    for (const ev of events) {
      if (ev.type !== 'Delete') continue
      this.#idle = this.#listeners.size === 0 ? this.#idle + 1 : 0
      const name = ev.kv.key.toString('latin1')
      const rev = BigInt(ev.kv.mod_revision)
      this.#record.delete(name)
      this.#record.set(name, rev)
      if (this.#record.size > RECORD_SIZE) this.#record.delete(this.#record.keys().next().value!)
      const set = this.#listeners.get(name)
      if (!set) continue
      for (const r of [...set]) {
        if (rev <= r.after) continue
        set.delete(r)
        r.listener.deleted(rev)
      }
      if (set.size === 0) this.#listeners.delete(name)
    }
    if (this.#idle >= IDLE_DELETIONS && this.#listeners.size === 0) this.#stopWatch()
  }

  /**
   * Cancels the prefix watch while nobody listens (the queue stays; the next `cover()` watches again, from
   * then). The record keeps what it saw: a deletion recorded is true whatever was missed since.
   */
  #stopWatch() {
    this.#log.debug({ prefix: this.prefix, deletions: this.#idle }, 'lock queue watch idle; cancelled')
    this.#idle = 0
    this.#handle?.cancel()
    this.#handle = undefined
    this.#from = undefined
    this.#needed = undefined
    this.#unprovenUntil = 0
  }

  #onCreated(at: bigint) {
    this.#from = at + 1n
    this.#unprovenUntil = performance.now() + UNPROVEN_MS
    const needed = this.#needed
    this.#needed = undefined
    if (needed === undefined || needed >= this.#from) return
    // deletions in [needed, at] were not watched: whoever waits may have missed its predecessor's
    this.#resetListeners(`the watch started at revision ${this.#from}, after ${needed}`)
  }

  #onReset(reason: string) {
    this.#handle = undefined
    this.#from = undefined
    this.#needed = undefined
    this.#resetListeners(reason)
  }

  #resetListeners(reason: string) {
    // Deletions in the gap are not replayed: everyone waiting reads again (and watches again from there).
    const all = [...this.#listeners.values()].flatMap((s) => [...s])
    this.#listeners.clear()
    this.#log.debug(
      { prefix: this.prefix, reason, waiting: all.length },
      'lock queue watch reset; reading again',
    )
    for (const r of all) r.listener.reset()
  }
}

/** The kit's prefix queues, one per lock or election name in use. */
export class QueueHub {
  readonly #queues = new Map<string, PrefixQueue>()
  #closed = false

  constructor(
    readonly ks: Keyspace,
    readonly hub: WatchHub,
    readonly log: Logger,
  ) {}

  /** The queue of `prefix` (`{name}/`), created on first use. */
  get(prefix: string): PrefixQueue {
    let q = this.#queues.get(prefix)
    if (!q || q.closed) {
      q = new PrefixQueue(this.ks, this.hub, this.log, prefix, (closed) => {
        if (this.#queues.get(prefix) === closed) this.#queues.delete(prefix)
      })
      if (!this.#closed) this.#queues.set(prefix, q)
    }
    return q
  }

  /** Waiters' reads after a wake, summed over the kit's queues that are alive; for tests and benchmarks. */
  get wakeReads(): number {
    let n = 0
    for (const q of this.#queues.values()) n += q.wakeReads
    return n
  }

  close() {
    this.#closed = true
    for (const q of [...this.#queues.values()]) q.close()
    this.#queues.clear()
  }
}

/** Where a contender stands after writing its key. */
export interface Position {
  /** The contender's own key (full, with the namespace). */
  key: Buffer
  /** Its create revision: the fencing token. */
  revision: bigint
  /** The revision of the read that found `predecessor`. */
  readRevision: bigint
  /** The key created just before ours, as read then; undefined when ours is first. */
  predecessor: IKeyValue | undefined
  /** The predecessor is not known yet: read it before waiting. */
  unknown?: boolean
  /** Every key created before ours, as read at `readRevision`, when there were at most `AHEAD_LIMIT`. */
  ahead?: readonly IKeyValue[]
  /**
   * When more keys are ahead than were read: the oldest of those read (`AHEAD_LIMIT` ahead of ours). Once
   * it is deleted the waiter is, in a queue served in order, within `AHEAD_LIMIT` of the front and reads
   * again. With neither this nor `ahead` (a read of the predecessor alone), the waiter waits for its
   * predecessor on the prefix watch and reads again, as Go's Mutex does.
   */
  farthest?: IKeyValue
}

/** The own key is gone while waiting (its lease expired or somebody deleted it). */
export class OwnKeyGone extends Error {}

/**
 * Range of the keys created before `revision` under the queue's prefix, newest first (Go's
 * `WithLastCreate` + max), at most `AHEAD_LIMIT`: the first is the predecessor; `more` says whether the
 * rest is all of them.
 */
function aheadRange(q: PrefixQueue, revision: bigint): IRangeRequest {
  return {
    ...q.range,
    max_create_revision: (revision - 1n).toString(),
    sort_order: 'Descend',
    sort_target: 'Create',
    limit: AHEAD_LIMIT,
  }
}

/**
 * Waits until no key under the queue's prefix was created before ours. When the read listed every key
 * ahead of ours (at most `AHEAD_LIMIT`), the prefix watch, which covers every revision since that read,
 * says when the last of them is deleted and that ours was not deleted before it: the turn comes with no
 * read at all (a handoff is the holder's delete and one watch event). Behind a longer queue, it waits for
 * the deletion of the predecessor, then reads again (one read per deletion of our predecessor, none for
 * anyone else's), in the same txn confirming our own key still exists. Resolves with the revision at
 * which ours was proven first. Rejects with `OwnKeyGone`, or with the reason of the first of `signals` to
 * abort.
 */
export async function waitTurn(ks: Keyspace, q: PrefixQueue, pos: Position, signals: readonly AbortSignal[]) {
  let { predecessor, readRevision, ahead, farthest } = pos
  let read = pos.unknown === true
  for (;;) {
    if (read) {
      const res = await ks.kv.txn({
        compare: [
          { key: pos.key, target: 'Create', result: 'Equal', create_revision: pos.revision.toString() },
        ],
        success: [{ request_range: aheadRange(q, pos.revision) }],
        failure: [],
      })
      if (!res.succeeded) throw new OwnKeyGone()
      readRevision = BigInt(res.header.revision)
      const range = res.responses[0]?.response_range
      predecessor = range?.kvs[0]
      ahead = range && !range.more ? range.kvs : undefined
      farthest = range?.more ? range.kvs.at(-1) : undefined
      read = false
    }
    if (!predecessor) return readRevision
    for (const s of signals) s.throwIfAborted()
    read = true
    if (farthest) {
      // deep in the queue: one key's watch, not the prefix's (each handoff would reach every waiter)
      if (await q.waitKeyDeleted(farthest.key, BigInt(farthest.create_revision), readRevision, signals))
        q.wakeReads++
      continue
    }
    if (!q.cover(readRevision)) continue
    if (!ahead) {
      // only the predecessor is known (an election's first read): wait for it on the prefix watch, as fast
      // as a handoff, then read how many are ahead
      if (await q.waitDelete(predecessor.key, BigInt(predecessor.create_revision), signals)) q.wakeReads++
      continue
    }
    const at = await q.waitAllDeleted(ahead, pos.key, pos.revision, signals)
    if (at !== undefined) return at
    // the watch was reset: deletions may have been missed
  }
}

/**
 * Watches a key this kit holds (a lock key, a leader key) for as long as it is held: calls `lost` once if
 * the key's lease is lost (on the local clock too) or somebody deletes the key. Deletions come from the
 * prefix's shared watch; when that watch is reset, one read checks the key.
 */
export class OwnKeyMonitor {
  readonly #ks: Keyspace
  readonly #q: PrefixQueue
  readonly #key: Buffer
  readonly #revision: bigint
  readonly #lease: { hex: string; signal: AbortSignal; deadline: number }
  readonly #lost: (message: string, cause?: unknown) => void
  readonly #onLeaseAbort: () => void
  #offDelete: () => void = () => {}
  #stopped = false

  constructor(
    ks: Keyspace,
    q: PrefixQueue,
    key: Buffer,
    revision: bigint,
    readRevision: bigint,
    lease: { hex: string; signal: AbortSignal; readonly deadline: number },
    lost: (message: string, cause?: unknown) => void,
  ) {
    this.#ks = ks
    this.#q = q
    this.#key = key
    this.#revision = revision
    this.#lease = lease
    this.#lost = lost
    this.#onLeaseAbort = () => {
      const reason: unknown = lease.signal.reason
      const why = reason instanceof Error ? reason.message : String(reason)
      this.#fire(`its session lease ${lease.hex} is gone (${why})`, reason)
    }
    if (lease.signal.aborted) {
      this.#onLeaseAbort()
      return
    }
    lease.signal.addEventListener('abort', this.#onLeaseAbort, { once: true })
    this.#watch(readRevision)
  }

  /**
   * Checks the lease deadline on the local monotonic clock now, so that code reading the state right after
   * a pause (before the session's periodic check had a turn) already sees the loss.
   */
  check() {
    if (!this.#stopped && performance.now() >= this.#lease.deadline)
      this.#fire(
        `its session lease ${this.#lease.hex} ran out on the local clock (no keepalive answer within its TTL)`,
      )
  }

  /** Stops watching (the key is being given up). Idempotent. */
  stop() {
    if (this.#stopped) return
    this.#stopped = true
    this.#offDelete()
    this.#offDelete = () => {}
    this.#lease.signal.removeEventListener('abort', this.#onLeaseAbort)
  }

  #fire(message: string, cause?: unknown) {
    if (this.#stopped) return
    this.stop()
    this.#lost(message, cause)
  }

  #watch(revision: bigint) {
    if (this.#stopped) return
    if (!this.#q.cover(revision)) {
      void this.#recheck()
      return
    }
    this.#offDelete = this.#q.onDelete(this.#key, this.#revision, {
      deleted: (rev) => this.#fire(`its key ${show(this.#key.toString())} was deleted at revision ${rev}`),
      reset: () => void this.#recheck(),
    })
  }

  async #recheck() {
    const backoff = new Backoff(50, 1_000)
    while (!this.#stopped) {
      try {
        const res = await this.#ks.kv.range({ key: this.#key })
        const kv = res.kvs[0]
        if (!kv || BigInt(kv.create_revision) !== this.#revision)
          return this.#fire(`its key ${show(this.#key.toString())} is gone`)
        return this.#watch(BigInt(res.header.revision))
      } catch (err) {
        // refused for good (permission revoked, credentials changed): the key can no longer be proven held
        if (isTerminal(err))
          return this.#fire(
            `its key ${show(this.#key.toString())} can no longer be read (${(err as Error).message})`,
            err,
          )
        // etcd unreachable: meanwhile the lease deadline on the local clock decides
        await sleep(backoff.next(), this.#lease.signal).catch(() => {})
      }
    }
  }
}

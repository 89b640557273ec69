import type { IEvent, IWatchRequest, IWatchResponse, WatchClient } from 'etcd3'
import type { Logger } from './logger.js'
import { recordWatchReset } from './metrics.js'
import { Backoff, cancelStream } from './util.js'

/** What to watch: a key, or the range [key, rangeEnd), from `startRevision` on. */
export interface WatchSpec {
  key: Buffer
  rangeEnd?: Buffer
  /** The first revision to deliver (a list read at revision R watches from R + 1). */
  startRevision: bigint
  /** Deliver only deletions (etcd's NOPUT filter). */
  deletesOnly?: boolean
}

export interface WatchListener {
  /** Events of one revision range, in order; `revision` is the store revision they were sent at. */
  onEvents(events: IEvent[], revision: bigint): void
  /**
   * The watch cannot go on from where it was: its revision was compacted, etcd cancelled it, or etcd's
   * revision went backwards (wiped or restored from a snapshot). The watch is dropped; the owner must read
   * the current state again and watch anew, or it would miss changes.
   */
  onReset(reason: string): void
  /**
   * etcd confirmed the watch, at store revision `revision` (called once). A watch from "now"
   * (`startRevision` 0) delivers every change after `revision`.
   */
  onCreated?(revision: bigint): void
}

export interface WatchHandle {
  cancel(): void
}

interface ActiveWatch {
  id: number
  spec: WatchSpec
  listener: WatchListener
  /** The next revision this watch must see: where it resumes after a reconnect. */
  next: bigint
  created: boolean
  /** `onCreated` was called. */
  announced: boolean
}

type Duplex = Awaited<ReturnType<WatchClient['watch']>>

/**
 * One gRPC watch stream per kit, multiplexing every watch over it with client-chosen watch ids
 * (etcd >= 3.4). On a broken stream it reconnects with backoff and resumes each watch from the
 * revision after the last one it delivered, so nothing is missed and nothing repeats.
 */
export class WatchHub {
  readonly #client: WatchClient
  readonly #log: Logger
  readonly #watches = new Map<number, ActiveWatch>()
  readonly #backoff = new Backoff(50, 2_000)
  #stream: Duplex | undefined
  #connecting = false
  #closed = false
  #nextId = 1
  #retryTimer: NodeJS.Timeout | undefined
  /** Streams opened over the kit's life (a reconnect opens a new one); for tests and diagnostics. */
  streamsOpened = 0

  constructor(client: WatchClient, log: Logger) {
    this.#client = client
    this.#log = log
  }

  /** `open`: the stream is up; `connecting`: it is being opened or reopened; `idle`: nothing to watch. */
  get state(): 'open' | 'connecting' | 'idle' {
    return this.#stream ? 'open' : this.#watches.size > 0 ? 'connecting' : 'idle'
  }

  /** Number of watches currently multiplexed on the stream. */
  get size() {
    return this.#watches.size
  }

  watch(spec: WatchSpec, listener: WatchListener): WatchHandle {
    const w: ActiveWatch = {
      id: this.#nextId++,
      spec,
      listener,
      next: spec.startRevision,
      created: false,
      announced: false,
    }
    this.#watches.set(w.id, w)
    if (this.#stream) this.#create(this.#stream, w)
    else this.#connect()
    return {
      cancel: () => {
        if (!this.#watches.delete(w.id)) return
        if (this.#stream && w.created)
          this.#stream.write({ cancel_request: { watch_id: w.id } } as IWatchRequest)
        if (this.#watches.size === 0) this.#dropStream()
      },
    }
  }

  close() {
    this.#closed = true
    clearTimeout(this.#retryTimer)
    this.#watches.clear()
    this.#dropStream()
  }

  #create(stream: Duplex, w: ActiveWatch) {
    w.created = false
    stream.write({
      create_request: {
        key: w.spec.key,
        range_end: w.spec.rangeEnd,
        start_revision: w.next.toString(),
        watch_id: w.id,
        progress_notify: true,
        filters: w.spec.deletesOnly ? ['Noput'] : [],
      },
    } as IWatchRequest)
  }

  #connect() {
    if (this.#connecting || this.#stream || this.#closed || this.#watches.size === 0) return
    this.#connecting = true
    this.#client
      .watch()
      .then((stream) => {
        this.#connecting = false
        if (this.#closed || this.#watches.size === 0) {
          cancelStream(stream)
          return
        }
        this.streamsOpened++
        this.#stream = stream
        stream.on('data', (res: IWatchResponse) => this.#onResponse(res))
        stream.on('error', (err: Error) => this.#onBroken(stream, err))
        stream.on('end', () => this.#onBroken(stream, new Error('watch stream ended')))
        for (const w of this.#watches.values()) this.#create(stream, w)
      })
      .catch((err: unknown) => {
        this.#connecting = false
        this.#retry(err)
      })
  }

  #onBroken(stream: Duplex, err: unknown) {
    if (this.#stream !== stream) return
    this.#stream = undefined
    cancelStream(stream)
    if (this.#closed) return
    this.#log.debug({ err }, 'etcd watch stream broken; resuming')
    this.#retry(err)
  }

  #retry(err: unknown) {
    if (this.#closed || this.#watches.size === 0) return
    const delay = this.#backoff.next()
    this.#log.debug({ err, delay }, 'etcd watch stream unavailable; retrying')
    clearTimeout(this.#retryTimer)
    this.#retryTimer = setTimeout(() => this.#connect(), delay)
    this.#retryTimer.unref()
  }

  #dropStream() {
    const stream = this.#stream
    this.#stream = undefined
    cancelStream(stream)
  }

  #onResponse(res: IWatchResponse) {
    const w = this.#watches.get(Number(res.watch_id))
    if (!w) {
      // cancelled by us before etcd confirmed it: cancel it on the server now that it exists there
      if (res.created && !res.canceled)
        this.#stream?.write({ cancel_request: { watch_id: Number(res.watch_id) } } as IWatchRequest)
      return
    }
    const revision = BigInt(res.header.revision)
    if (res.canceled) {
      this.#watches.delete(w.id)
      const reason =
        res.compact_revision && res.compact_revision !== '0'
          ? `revision ${w.next} was compacted (compact revision ${res.compact_revision})`
          : `etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`
      recordWatchReset(reason)
      w.listener.onReset(reason)
      return
    }
    if (res.created) {
      w.created = true
      this.#backoff.reset()
      // a watch from "now" (0) starts after the revision of its creation: resume from there later
      if (w.next === 0n) w.next = revision + 1n
      // A store whose revision is behind where we were was wiped or restored: starting at `next` would
      // wait for revisions that mean something else, so hand the watch back to its owner.
      if (revision + 1n < w.next) {
        this.#watches.delete(w.id)
        this.#stream?.write({ cancel_request: { watch_id: w.id } } as IWatchRequest)
        recordWatchReset('wiped')
        w.listener.onReset(`etcd's revision went back from ${w.next - 1n} to ${revision} (wiped or restored)`)
        return
      }
      if (!w.announced) {
        w.announced = true
        w.listener.onCreated?.(revision)
      }
      return
    }
    if (res.events.length > 0) {
      const last = res.events[res.events.length - 1]!
      w.next = BigInt(last.kv.mod_revision) + 1n
      try {
        w.listener.onEvents(res.events, revision)
      } catch (err) {
        this.#log.error({ err }, 'etcd watch listener threw')
      }
    } else if (revision + 1n > w.next) {
      // a progress notification: everything up to `revision` has been sent
      w.next = revision + 1n
    }
  }
}

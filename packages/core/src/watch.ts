import type { IEvent, IWatchRequest, IWatchResponse, WatchClient } from 'etcd3'
import { isTerminal } from './errors.js'
import type { Logger } from './logger.js'
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
 * Makes etcd3 hold a valid auth token for the next stream (a unary call on `key`: a call refused for an
 * invalid token makes etcd3 authenticate again). Rejects when that fails (permission, credentials, etcd).
 */
export type RefreshAuth = (key: Buffer) => Promise<void>

/** etcd's reason for a refused watch whose stream token expired (or etcd restarted, forgetting tokens). */
const INVALID_TOKEN = /invalid auth token/i
/** Pace of attempts to open a stream while etcd refuses the kit's credentials. */
const REFUSED_RETRY_MS = 5_000

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
  /**
   * Ids of the create requests written on the current stream and not answered yet, in order. etcd answers
   * creates in order, and a refused one with `watch_id: -1` (not the id we chose): the oldest pending.
   */
  #pending: number[] = []
  readonly #refreshAuth: RefreshAuth | undefined
  #reauthing = false
  /** The last attempt to open a stream was refused (credentials): reported once, retried slowly. */
  #refused = false
  /** Streams opened over the kit's life (a reconnect opens a new one); for tests and diagnostics. */
  streamsOpened = 0

  constructor(client: WatchClient, log: Logger, refreshAuth?: RefreshAuth) {
    this.#client = client
    this.#log = log
    this.#refreshAuth = refreshAuth
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
    this.#pending.push(w.id)
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
        this.#refused = false
        this.#stream = stream
        this.#pending = []
        // answers still arriving on a stream already replaced belong to its (gone) watches, not the new ones
        stream.on('data', (res: IWatchResponse) => {
          if (this.#stream === stream) this.#onResponse(res)
        })
        stream.on('error', (err: Error) => this.#onBroken(stream, err))
        stream.on('end', () => this.#onBroken(stream, new Error('watch stream ended')))
        for (const w of this.#watches.values()) this.#create(stream, w)
      })
      .catch((err: unknown) => {
        this.#connecting = false
        // refused credentials: each attempt costs etcd a password check, so say so, and try at the slowest pace
        if (isTerminal(err)) {
          if (!this.#refused)
            this.#log.error({ err }, 'etcd refused to open the watch stream; retrying every few seconds')
          this.#refused = true
          this.#retry(err, REFUSED_RETRY_MS)
          return
        }
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

  #retry(err: unknown, minDelay = 0) {
    if (this.#closed || this.#watches.size === 0) return
    const delay = Math.max(minDelay, this.#backoff.next())
    this.#log.debug({ err, delay }, 'etcd watch stream unavailable; retrying')
    clearTimeout(this.#retryTimer)
    this.#retryTimer = setTimeout(() => this.#connect(), delay)
    this.#retryTimer.unref()
  }

  #dropStream() {
    const stream = this.#stream
    this.#stream = undefined
    this.#pending = []
    cancelStream(stream)
  }

  /**
   * etcd refused to create a watch on this stream because the stream's token is no longer valid (it
   * expired while idle, or etcd restarted): get etcd3 a valid token, then open a new stream on which every
   * watch is created again from where it was. When no token can be had (credentials changed, permission
   * revoked), the watches waiting for creation are handed back to their owners, whose reads then meet
   * the same refusal and report it.
   */
  #reauthenticate(w: ActiveWatch) {
    if (this.#reauthing) return
    this.#reauthing = true
    const refresh = this.#refreshAuth ?? (() => Promise.resolve())
    this.#log.info({}, 'etcd refused a watch for an invalid auth token; authenticating again')
    refresh(w.spec.key).then(
      () => {
        this.#reauthing = false
        if (this.#closed) return
        this.#dropStream()
        this.#connect()
      },
      (err: unknown) => {
        this.#reauthing = false
        if (this.#closed) return
        this.#log.warn({ err }, 'could not authenticate again for the etcd watch stream')
        const waiting = [...this.#watches.values()].filter((x) => !x.created)
        for (const x of waiting) this.#watches.delete(x.id)
        if (this.#watches.size === 0) this.#dropStream()
        for (const x of waiting)
          x.listener.onReset(
            `etcd refused the watch (invalid auth token) and authenticating again failed: ${
              err instanceof Error ? err.message : String(err)
            }`,
          )
      },
    )
  }

  #onResponse(res: IWatchResponse) {
    let id = Number(res.watch_id)
    if (res.created) {
      // a refused create carries watch_id -1: it answers the oldest create still pending
      const at = id === -1 ? 0 : this.#pending.indexOf(id)
      if (at >= 0 && at < this.#pending.length) id = this.#pending.splice(at, 1)[0]!
      if (id === -1) {
        this.#log.warn({ reason: res.cancel_reason }, 'etcd refused a watch this kit did not ask for')
        return
      }
    }
    const w = this.#watches.get(id)
    if (!w) {
      // cancelled by us before etcd confirmed it: cancel it on the server now that it exists there
      if (res.created && !res.canceled)
        this.#stream?.write({ cancel_request: { watch_id: Number(res.watch_id) } } as IWatchRequest)
      return
    }
    const revision = BigInt(res.header.revision)
    if (res.canceled && res.created && INVALID_TOKEN.test(res.cancel_reason)) {
      this.#reauthenticate(w)
      return
    }
    if (res.canceled) {
      this.#watches.delete(w.id)
      const reason =
        res.compact_revision && res.compact_revision !== '0'
          ? `revision ${w.next} was compacted (compact revision ${res.compact_revision})`
          : `etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`
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

import { performance } from 'node:perf_hooks'
import type { IEvent, IWatchRequest, IWatchResponse, KVClient, WatchClient } from 'etcd3'
import { isTerminal } from '../errors.js'
import type { Logger } from '../ops/logger.js'
import { recordWatchReset } from '../ops/metrics.js'
import { Backoff, cancelStream } from '../util.js'
import type { StreamEndpoint, StreamSource } from './endpoints.js'

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
  /**
   * The watch stopped being known current: the stream it was on broke or stopped answering (every watch
   * etcd had confirmed on it gets this call). `since` is when that stream was last heard from (`Date.now()`
   * ms): nothing after that is known to have been delivered. The hub resumes the watch on its own.
   */
  onStale?(reason: string, since: number): void
  /**
   * etcd confirmed the watch on a live stream, for the first time (at once) or again after `onStale` (a
   * quarter second later, once etcd's catch-up pass would have cancelled a watch whose revision was
   * compacted meanwhile): every change after the revision it resumed from is delivered (changes etcd
   * replays from before the confirmation first, within its catch-up cycle of about 100 ms).
   */
  onCurrent?(): void
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
  /** Confirmed on the live stream since the last `onStale` (or ever). */
  current: boolean
  /**
   * While the member it was created on is checked for being behind (`#checkBehind`): its events, held
   * back until that member is known to be only catching up (or dropped when it turns out wiped).
   */
  held?: Array<[events: IEvent[], revision: bigint]>
  /**
   * The store this watch's revisions belong to: the hub's `#epoch` when it was added. A watch of an
   * earlier epoch resumes at revisions of a store that is gone (wiped or restored): it is reset.
   */
  epoch: number
  /**
   * When created again after a break: the store revision the hub had heard of by then. A member answering
   * below it is behind where etcd had been (a follower catching up, or a store gone back), even when the
   * watch itself had reached an older revision.
   */
  floor: bigint
}

type Duplex = Awaited<ReturnType<WatchClient['watch']>>

/** The watch stream's health, for staleness and diagnostics. */
export interface WatchStreamHealth {
  /** The member the stream is on, while one is open. */
  readonly endpoint: string | undefined
  /** A stream is open (it may still turn out silent). */
  readonly connected: boolean
  /** When etcd last sent anything on the open stream (`performance.now()` ms); undefined without one. */
  readonly lastHeardAt: number | undefined
}

/**
 * After how long without a message a stream is asked for progress, and how long after that a stream that
 * stays wholly silent counts as dead. etcd answers progress requests in order with watch creations: on a
 * loaded machine here, 50 creations took 8 s and an answer 1.6 s, but some message came at least every
 * 1.4 s; a stream killed too eagerly would be recreated, and killed again, for ever.
 */
const PROBE_IDLE_MS = 750
const PROBE_DEAD_MS = 2_500

/**
 * After a stream was killed for silence or broke, a stream that has not answered at all for this long while
 * etcd answers elsewhere (the session's keepalive, a unary check) is dead, not slow: reopened at once
 * rather than after the watchdog's backed-off wait, which grows while nothing answers (up to 20 s).
 */
const RECHECK_SILENT_MS = 1_500
/**
 * Pace of the unary checks that tell "etcd is back" to a kit whose watch stream is silent after a break
 * (one in flight per member; while etcd is down they fail on this machine, at no cost to etcd). Half a
 * second: the spread resume (below) comes after this detection, and both count in the recovery time.
 */
const RECHECK_POLL_MS = 500

/** How long a resumed watch waits for etcd's catch-up pass (100 ms apart) before it counts as current. */
const RESUME_SETTLE_MS = 250

/**
 * After an outage, a kit resumes its watches at a random moment (full jitter) within a window: 150 ms per
 * watch it resumes, at most half the outage, at most 5 s. Every kit of a fleet saw the same outage end in
 * the same instant (a full cluster restart): resumed at once, each kit's watch creations (one message per
 * watch, 22 per kit in the fleet bench) reached etcd in the same second, 11x the steady request rate.
 * - Per watch: a resume costs etcd one creation per watch, so with the window proportional to them the
 *   fleet's creations come at about one per 150 ms per kit (under 7/s per kit, against 2.3 messages/s
 *   per kit in steady state at ttl 10), whatever the fleet's size; a kit with few watches (a single
 *   service's, three or four) waits about half a second at most.
 * - Half the outage, and none under 2 s (below): a blip (a member restart, a stream moved off a silent
 *   member) resumes at once.
 * - 5 s: a kit with a great many watches is not left stale for long.
 */
const RESUME_SPREAD_PER_WATCH_MS = 150
const RESUME_SPREAD_FRACTION = 0.5
const RESUME_SPREAD_MAX_MS = 5_000

/**
 * Outages shorter than this resume at once. A member restart or a stream moved off a silent member is
 * over before the kits' reconnect attempts (backed off to 2 s) have converged on one instant; and a store
 * wiped and refilled in a moment must be met before it is refilled past the revisions the watches had
 * reached, while it is still recognisably behind (`#checkBehind`; recovery.test.ts, "etcd wiped").
 */
const RESUME_SPREAD_MIN_OUTAGE_MS = 2_000

/** The window a kit resumes `watches` watches in after an outage of `outageMs` (see above). */
export function resumeWindowMs(outageMs: number, watches: number): number {
  if (outageMs < RESUME_SPREAD_MIN_OUTAGE_MS) return 0
  return Math.min(
    RESUME_SPREAD_MAX_MS,
    Math.max(0, outageMs) * RESUME_SPREAD_FRACTION,
    watches * RESUME_SPREAD_PER_WATCH_MS,
  )
}

/** etcd's reason for a refused watch whose stream token expired (or etcd restarted, forgetting tokens). */
const INVALID_TOKEN = /invalid auth token/i
/** Pace of attempts to open a stream while etcd refuses the kit's credentials. */
const REFUSED_RETRY_MS = 5_000

/**
 * One gRPC watch stream per kit, multiplexing every watch over it with client-chosen watch ids
 * (etcd >= 3.4). On a broken stream it reconnects with backoff and resumes each watch from the
 * revision after the last one it delivered, so nothing is missed and nothing repeats.
 *
 * A watchdog tells a quiet stream from a dead one: after 0.75 s without a message it sends etcd's
 * progress request (answered at once by a live member); when nothing at all comes for 2.5 s more, the
 * stream takes the broken-stream path and is reopened on another member, resuming every watch from its
 * revision (grpc-js alone would keep the silent connection for its 15 s HTTP/2 keepalive).
 */
export class WatchHub {
  readonly #streams: StreamSource
  readonly #log: Logger
  readonly #watches = new Map<number, ActiveWatch>()
  readonly #backoff = new Backoff(50, 2_000)
  #stream: Duplex | undefined
  #endpoint: string | undefined
  #lastHeardAt = 0
  #probeSentAt: number | undefined
  /** Silence after a probe that counts as dead: doubled by each watchdog kill, reset by a probe's answer. */
  #deadMs = PROBE_DEAD_MS
  #watchdog: NodeJS.Timeout | undefined
  #connecting = false
  #closed = false
  #nextId = 1
  #retryTimer: NodeJS.Timeout | undefined
  /** When the current stream was last heard from (`Date.now()` ms), for `onStale`. */
  #heardAt = 0
  /**
   * Ids of the create requests written on the current stream and not answered yet, in order. etcd answers
   * creates in order, and a refused one with `watch_id: -1` (not the id we chose): the oldest pending.
   */
  #pending: number[] = []
  /** The member (and its client) the current stream is on, or was last opened on. */
  #source: StreamEndpoint | undefined
  #reauthing = false
  /** The last attempt to open a stream was refused (credentials): reported once, retried slowly. */
  #refused = false
  /** Streams opened over the kit's life (a reconnect opens a new one); for tests and diagnostics. */
  streamsOpened = 0
  /**
   * A stream broke or was killed for silence, and no stream has answered since: an outage, which ends when
   * etcd answers anywhere (see `#recheck`).
   */
  #outage = false
  /** When the current stream was opened, or its watches created on it (`performance.now()` ms). */
  #openedAt = 0
  /**
   * While nothing has answered since a stream broke: when that stream was last heard from
   * (`performance.now()` ms), the outage's start. Cleared by the first answer from etcd, anywhere.
   */
  #outageSince: number | undefined
  /**
   * The current stream was opened while nothing answered: nothing is written on it (its writes would wait
   * in grpc-js's buffer and reach etcd the instant it listens again, with every other kit's) until its
   * member is known to answer.
   */
  #blind = false
  /** The stream every watch was created on; until then, a new stream holds its creations. */
  #resumed: Duplex | undefined
  /** Not before this (`performance.now()` ms) are watches created on a new stream: the spread resume. */
  #resumeAt = 0
  #resumeTimer: NodeJS.Timeout | undefined
  /** When each endpoint last answered (a keepalive, a poll; `''`: a unary call of unknown member). */
  readonly #answeredAt = new Map<string, number>()
  /** The current stream has sent something since it was opened. */
  #heardOnStream = false
  /** A unary check of etcd is in flight, or when the last one was sent (`performance.now()` ms). */
  /** Members a unary check of etcd is in flight to (`#poll`). */
  readonly #polling = new Set<string>()
  #polledAt = 0
  readonly #unsubscribe: () => void
  /** The current stream's member's revision as a linearizable read saw it, once asked (`#checkBehind`). */
  #caughtUp: { stream: Duplex; revision: Promise<bigint | undefined> } | undefined
  /** The highest store revision etcd has reported on any watch stream (a header, a progress answer). */
  #storeRevision = 0n
  /** Raised each time the store turns out to have gone back (`#wentBack`): see `ActiveWatch.epoch`. */
  #epoch = 0

  constructor(streams: StreamSource, log: Logger) {
    this.#streams = streams
    this.#log = log
    this.#unsubscribe = streams.onAnswered((endpoint) => {
      this.#answeredAt.set(endpoint ?? '', performance.now())
      this.#recheck()
    })
  }

  /** `open`: the stream is up; `connecting`: it is being opened or reopened; `idle`: nothing to watch. */
  get state(): 'open' | 'connecting' | 'idle' {
    return this.#stream ? 'open' : this.#watches.size > 0 ? 'connecting' : 'idle'
  }

  /** The stream's member and when it last answered. */
  get health(): WatchStreamHealth {
    const open = this.#stream !== undefined
    return {
      endpoint: open ? this.#endpoint : undefined,
      connected: open,
      lastHeardAt: open ? this.#lastHeardAt : undefined,
    }
  }

  /**
   * A client of the open stream's member while that stream answers (heard from, no progress request left
   * unanswered): for the read that follows a reset watch, which etcd3's pick per call may otherwise send to
   * a member still cut off, to wait out the call timeout there. A member that answers is on the quorum's
   * side; the read stays linearizable. `undefined` otherwise: the caller reads the usual way.
   */
  reader(): KVClient | undefined {
    if (!this.#stream || !this.#heardOnStream || this.#probeSentAt !== undefined) return undefined
    if (performance.now() - this.#lastHeardAt > PROBE_IDLE_MS) return undefined
    return this.#source?.kv
  }

  /**
   * The highest store revision etcd has reported to this hub: a store answering below it (a linearizable
   * read) went back, wiped or restored. Idle streams learn it within about a second (the watchdog's
   * progress request), busy ones with every answer.
   */
  get storeRevision(): bigint {
    return this.#storeRevision
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
      current: false,
      epoch: this.#epoch,
      floor: 0n,
    }
    this.#watches.set(w.id, w)
    // on a stream still holding its creations (blind, or waiting for its moment), it is created with them
    if (this.#stream && this.#resumed === this.#stream) this.#create(this.#stream, w)
    else if (!this.#stream) this.#connect()
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
    this.#unsubscribe()
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#resumeTimer)
    this.#watches.clear()
    this.#dropStream()
  }

  #create(stream: Duplex, w: ActiveWatch, floor = 0n) {
    w.created = false
    w.floor = floor
    w.held = undefined // events held on an earlier stream come again on this one, from `next`
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
    const startedAt = performance.now()
    const startedBlind = this.#outageSince !== undefined
    const source = this.#streams.pick()
    const { endpoint, watchClient } = source
    this.#source = source
    watchClient
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
        this.#endpoint = endpoint
        this.#lastHeardAt = performance.now()
        this.#openedAt = this.#lastHeardAt
        this.#heardOnStream = false
        this.#probeSentAt = undefined
        this.#resumed = undefined
        this.#startWatchdog()
        stream.on('data', (res: IWatchResponse) => {
          this.#heardAt = Date.now()
          // answers still arriving on a stream already replaced belong to its (gone) watches, not the new ones
          if (this.#stream !== stream) return
          this.#heardOnStream = true
          this.#outage = false
          // any message, a progress answer included (watch id -1), shows the stream is alive
          this.#lastHeardAt = performance.now()
          this.#probeSentAt = undefined
          if (Number(res.watch_id) === -1 && !res.created && !res.canceled) this.#deadMs = PROBE_DEAD_MS
          this.#onResponse(res)
        })
        stream.on('error', (err: Error) => this.#onBroken(stream, err))
        stream.on('end', () => this.#onBroken(stream, new Error('watch stream ended')))
        // opened while etcd had not answered since the outage began, and its member has not answered
        // since: blind, nothing written until that member answers (a poll asks at once) or another does
        this.#blind =
          this.#outageSince !== undefined || (startedBlind && !this.#answeredSince(endpoint, startedAt))
        if (this.#blind) this.#poll()
        else this.#resume(stream)
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
        this.#streams.failed(endpoint)
        this.#retry(err)
      })
  }

  #startWatchdog() {
    if (this.#watchdog) return
    this.#watchdog = setInterval(() => {
      this.#probe()
      this.#poll()
    }, 250)
    this.#watchdog.unref()
  }

  #stopWatchdog() {
    clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /** Whether `endpoint` answered at or after `since` (`''`, a unary call's unknown member, counts alone). */
  #answeredSince(endpoint: string, since: number): boolean {
    const at = this.#answeredAt.get(endpoint) ?? Number.NEGATIVE_INFINITY
    const any = this.#streams.several ? Number.NEGATIVE_INFINITY : (this.#answeredAt.get('') ?? -Infinity)
    return Math.max(at, any) >= since
  }

  /**
   * Creates every watch on `stream`, once the spread resume's moment (`#resumeAt`) has come: after an
   * outage each kit waits its own random delay (see RESUME_SPREAD_FRACTION).
   */
  #resume(stream: Duplex) {
    clearTimeout(this.#resumeTimer)
    if (this.#closed || this.#stream !== stream || this.#resumed === stream) return
    const wait = this.#resumeAt - performance.now()
    if (wait > 0) {
      this.#resumeTimer = setTimeout(() => this.#resume(stream), wait)
      this.#resumeTimer.unref()
      return
    }
    this.#resumed = stream
    // the watchdog counts the stream's silence from its first question, not from its opening
    this.#lastHeardAt = performance.now()
    this.#openedAt = this.#lastHeardAt
    this.#probeSentAt = undefined
    // what etcd had reached before the break: a store that answers below it went back, or is catching up
    const floor = this.#storeRevision
    for (const w of this.#watches.values()) this.#create(stream, w, floor)
  }

  /** Asks a quiet stream for progress; declares it dead when the question goes unanswered. */
  #probe() {
    const stream = this.#stream
    // a stream that asked nothing yet (blind, or holding its creations) has nothing to be answered
    if (!stream || this.#resumed !== stream) return
    const now = performance.now()
    if (this.#probeSentAt !== undefined) {
      if (now - Math.max(this.#probeSentAt, this.#lastHeardAt) < this.#deadMs) return
      const deadMs = this.#deadMs
      // if it was only slow, the next stream gets longer (or every recreation could be cut short in turn)
      this.#deadMs = Math.min(this.#deadMs * 2, 20_000)
      this.#log.warn(
        { endpoint: this.#endpoint, silentMs: Math.round(now - this.#lastHeardAt) },
        this.#streams.several
          ? 'etcd watch stream not answering; reopening it on another member'
          : 'etcd watch stream not answering; reopening it',
      )
      this.#onBroken(stream, new Error(`watch stream on ${this.#endpoint} gave no answer for ${deadMs} ms`))
      return
    }
    if (now - this.#lastHeardAt < PROBE_IDLE_MS) return
    this.#probeSentAt = now
    stream.write({ progress_request: {} } as IWatchRequest)
  }

  /**
   * During an outage, asks every member a cheap unary question (at most one in flight per member, at most
   * one round every half second): an answer, like the session's keepalive answers (through
   * `StreamSource.answered`), ends the outage, also for a kit with no session. Per member, so that a
   * member still cut off (its check waits out the call timeout) does not hold back the others' checks.
   */
  #poll() {
    const now = performance.now()
    if (!this.#outage || now - this.#polledAt < RECHECK_POLL_MS) return
    // not while a stream waits for its moment to resume: etcd answered, and nothing is asked of it yet
    const asking = this.#stream !== undefined && this.#resumed === this.#stream && !this.#heardOnStream
    if (this.#outageSince === undefined && !this.#blind && !asking) return
    const w = this.#watches.values().next().value
    if (!w) return
    this.#polledAt = now
    // every member at once: the first to answer ends the outage, and is where the stream goes next
    for (const source of this.#streams.each()) {
      if (this.#polling.has(source.endpoint)) continue
      this.#polling.add(source.endpoint)
      source.kv
        .range({ key: w.spec.key, limit: '1', keys_only: true, count_only: true })
        .then(
          (res) => {
            // a linearizable read: below what etcd had reached, the store went back (see `ActiveWatch.floor`)
            const now = BigInt(res.header.revision)
            if (now < this.#storeRevision) this.#wentBack(this.#epoch, this.#storeRevision, now)
            this.#streams.answered(source.endpoint)
          },
          () => {},
        )
        .finally(() => this.#polling.delete(source.endpoint))
    }
  }

  /**
   * etcd answered on another path (a keepalive, a unary call, this hub's poll). The first answer after an
   * outage ends it: the moment every watch resumes is drawn (`#resumeAt`, see RESUME_SPREAD_FRACTION).
   * Then, rather than leave the stream to the backed-off watchdog: with no stream, the next one is
   * opened at that moment; a blind stream (opened during the outage, nothing written on it) is dropped
   * for one opened then, on a member that answered; a stream whose
   * watches were created after the outage but that has not answered anything for 1.5 s, long enough for
   * a live member to have answered, is reopened now. Every stale watch is then resumed (or relisted)
   * within about a second of etcd answering, plus the spread.
   */
  #recheck() {
    if (!this.#outage || this.#closed || this.#watches.size === 0) return
    const now = performance.now()
    if (this.#outageSince !== undefined) {
      const outageMs = now - this.#outageSince
      this.#outageSince = undefined
      this.#resumeAt = now + Math.random() * resumeWindowMs(outageMs, this.#watches.size)
    }
    if (this.#connecting) return
    const stream = this.#stream
    if (!stream) {
      if (this.#refused) return
      clearTimeout(this.#retryTimer)
      this.#backoff.reset()
      this.#retryTimer = setTimeout(() => this.#connect(), Math.max(0, this.#resumeAt - now))
      this.#retryTimer.unref()
      return
    }
    if (this.#blind) {
      // opened while nothing answered: it may sit on a connection given up meanwhile, or on the member
      // still cut off; a new stream, on a member that answered, at the resume's moment
      this.#dropStream()
      clearTimeout(this.#retryTimer)
      this.#retryTimer = setTimeout(() => this.#connect(), Math.max(0, this.#resumeAt - now))
      this.#retryTimer.unref()
      return
    }
    if (this.#resumed !== stream) return
    const silentMs = now - this.#openedAt
    if (this.#heardOnStream || silentMs < RECHECK_SILENT_MS) return
    this.#log.info(
      { endpoint: this.#endpoint, silentMs: Math.round(silentMs) },
      'etcd answers again but the watch stream opened during the outage does not; reopening it now',
    )
    this.#backoff.reset()
    this.#onBroken(
      stream,
      new Error(`watch stream on ${this.#endpoint} opened during an outage gave no answer`),
    )
  }

  #onBroken(stream: Duplex, err: unknown) {
    if (this.#stream !== stream) return
    this.#stream = undefined
    this.#stopWatchdog()
    if (this.#endpoint !== undefined) this.#streams.failed(this.#endpoint)
    cancelStream(stream)
    if (this.#closed) return
    this.#outage = true
    // the outage began when etcd was last heard from, on this stream or elsewhere (a keepalive answered by
    // another member: only this member is out), unless it began before, with no answer since
    this.#outageSince ??= Math.max(this.#lastHeardAt, ...this.#answeredAt.values())
    this.#log.debug({ err }, 'etcd watch stream broken; resuming')
    this.#staleAll(`the etcd watch stream broke: ${err instanceof Error ? err.message : String(err)}`)
    this.#retry(err)
  }

  /** Every watch confirmed on the stream that just broke is no longer known current. */
  #staleAll(reason: string) {
    for (const w of this.#watches.values()) {
      if (!w.current) continue
      w.current = false
      try {
        w.listener.onStale?.(reason, this.#heardAt)
      } catch (err) {
        this.#log.error({ err }, 'etcd watch listener threw')
      }
    }
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
    this.#stopWatchdog()
    this.#pending = []
    this.#blind = false
    this.#resumed = undefined
    clearTimeout(this.#resumeTimer)
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
    this.#log.info({}, 'etcd refused a watch for an invalid auth token; authenticating again')
    // a unary read of the watched key through the stream's own client: refused for the expired token, it
    // makes etcd3 authenticate again, so the next stream carries a valid one
    const kv = this.#source?.kv
    const refresh = kv
      ? kv.range({ key: w.spec.key, limit: '1', keys_only: true, count_only: true }).then(() => {})
      : Promise.resolve()
    refresh.then(
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

  /** Hands events to the watch's owner and moves the watch past them. */
  #deliver(w: ActiveWatch, events: IEvent[], revision: bigint) {
    w.next = BigInt(events[events.length - 1]!.kv.mod_revision) + 1n
    try {
      w.listener.onEvents(events, revision)
    } catch (err) {
      this.#log.error({ err }, 'etcd watch listener threw')
    }
  }

  /** The watch is confirmed on the live stream, from where it was: it is current. */
  #confirmed(w: ActiveWatch, revision: bigint) {
    const current = () => {
      if (w.current || this.#watches.get(w.id) !== w || this.#stream !== stream) return
      w.current = true
      w.listener.onCurrent?.()
    }
    const stream = this.#stream
    if (!w.announced) {
      w.announced = true
      w.listener.onCreated?.(revision)
      current()
      return
    }
    // Resumed after a broken stream: etcd confirms the creation at once, but a watch resuming at a revision
    // compacted meanwhile is cancelled only by etcd's next catch-up pass (every 100 ms). Current after that,
    // not before: a view must not say current for the moment before it learns it missed versions.
    setTimeout(current, RESUME_SETTLE_MS).unref()
  }

  /**
   * The member a watch was just created on answered at `revision`, below `floor`: the revision the watch
   * had reached, or, for a watch created again after a break, the highest the hub had heard of. A
   * follower that was cut off and is catching up does that: its watch delivers from where it was as soon
   * as the member has applied those revisions. A wiped or restored store does too, and there a watch at
   * `next` would wait for revisions that mean something else, or skip the refilled store's changes below
   * `next` (a store refilled while the kit waited to resume: recovery.test.ts, "etcd frozen for 3 s, then
   * wiped"). One linearizable read on that member (it waits until the member has applied everything the
   * leader had committed) tells them apart, once per stream; the watch's events are held until then.
   * When the read fails, it counts as wiped: the owner reads again, which is always safe.
   */
  #checkBehind(w: ActiveWatch, revision: bigint, floor: bigint) {
    const stream = this.#stream
    if (!stream) return
    w.held = []
    if (this.#caughtUp?.stream !== stream) {
      const kv = this.#source?.kv
      this.#caughtUp = {
        stream,
        revision: kv
          ? kv
              .range({ key: w.spec.key, limit: '1', keys_only: true, count_only: true })
              .then((res) => BigInt(res.header.revision))
              .catch(() => undefined)
          : Promise.resolve(undefined),
      }
    }
    void this.#caughtUp.revision.then((now) => {
      // a new stream re-created the watch from `next` (held events come again there), or it was cancelled
      if (this.#stream !== stream || this.#watches.get(w.id) !== w) return
      const held = w.held ?? []
      w.held = undefined
      if (now !== undefined && now >= floor && w.epoch === this.#epoch) {
        this.#log.debug(
          { endpoint: this.#endpoint, answered: String(revision), caughtUp: String(now) },
          'etcd watch created on a member that was catching up; resuming there',
        )
        // it delivers every change after the revision it had reached, not after the one the member answered at
        this.#confirmed(w, w.next - 1n)
        for (const [events, at] of held) if (this.#watches.get(w.id) === w) this.#deliver(w, events, at)
        return
      }
      this.#wentBack(w.epoch, floor, now ?? revision)
    })
  }

  /**
   * The store went back from `from` to `to` (wiped, or restored from a snapshot): every watch added before
   * (an earlier epoch) is at revisions of a store that is gone, and is reset, so its owner reads again;
   * watches added from now on belong to the store etcd has now. `epoch` is the epoch the evidence was
   * about: evidence about an epoch already left behind changes nothing more.
   */
  #wentBack(epoch: number, from: bigint, to: bigint) {
    if (epoch === this.#epoch) {
      this.#epoch++
      this.#storeRevision = to
      this.#log.warn(
        { from: String(from), to: String(to) },
        "etcd's revision went back (wiped or restored from a snapshot); every watch reads again",
      )
    }
    const stream = this.#stream
    if (!stream) return
    for (const w of [...this.#watches.values()]) {
      // one still held waits for the check of its stream, and one not yet created for its creation
      if (w.epoch === this.#epoch || w.held || !w.created || this.#watches.get(w.id) !== w) continue
      this.#reset(stream, w, from, to)
    }
  }

  #reset(stream: Duplex, w: ActiveWatch, from: bigint, to: bigint) {
    this.#watches.delete(w.id)
    stream.write({ cancel_request: { watch_id: w.id } } as IWatchRequest)
    recordWatchReset('wiped')
    w.listener.onReset(`etcd's revision went back from ${from} to ${to} (wiped or restored)`)
  }

  #onResponse(res: IWatchResponse) {
    // every answer, a progress answer included, tells how far the store is (see `ActiveWatch.floor`)
    const revision = BigInt(res.header.revision)
    if (revision > this.#storeRevision) this.#storeRevision = revision
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
      recordWatchReset(reason)
      w.listener.onReset(reason)
      return
    }
    if (res.created) {
      w.created = true
      this.#backoff.reset()
      // a watch from "now" (0) starts after the revision of its creation: resume from there later
      if (w.next === 0n) w.next = revision + 1n
      // created again after the store was found gone back: its revisions mean nothing now
      if (w.epoch !== this.#epoch) {
        this.#reset(this.#stream!, w, w.next - 1n, revision)
        return
      }
      // a member behind where we were: a follower still catching up (after a failover), or a store wiped
      // or restored from a snapshot; which one, a linearizable read on that member tells
      const floor = w.next - 1n > w.floor ? w.next - 1n : w.floor
      if (revision < floor) {
        this.#checkBehind(w, revision, floor)
        return
      }
      this.#confirmed(w, revision)
      return
    }
    if (w.held) {
      if (res.events.length > 0) w.held.push([res.events, revision])
      return
    }
    if (res.events.length > 0) {
      this.#deliver(w, res.events, revision)
    } else if (revision + 1n > w.next) {
      // a progress notification: everything up to `revision` has been sent
      w.next = revision + 1n
    }
  }
}

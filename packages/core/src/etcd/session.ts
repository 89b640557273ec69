import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { ILeaseKeepAliveResponse, LeaseClient } from 'etcd3'
import { ClosedError, type EtcdKitError, EtcdUnavailableError, etcdError, isTerminal } from '../errors.js'
import type { Logger } from '../ops/logger.js'
import { recordKeepalive, recordLeaseLoss, recordSessionState } from '../ops/metrics.js'
import { Backoff, cancelStream, deferred } from '../util.js'
import type { StreamSource } from './endpoints.js'

/**
 * `connecting`: no lease yet (or a new one is being granted); `alive`: the lease is kept alive;
 * `suspect`: no keepalive answer for a third of the TTL (with several endpoints, the keepalive moves to
 * another member); `lost`: etcd says the lease is gone, or it may have expired (its deadline, less the
 * margin, passed without an answer that moves it); `closed`: the session was closed and its lease revoked.
 */
export type SessionState = 'connecting' | 'alive' | 'suspect' | 'lost' | 'closed'

/** One lease of the session. A session replaces its lease when it is lost; a Lease never comes back. */
export interface Lease {
  /** The lease id, decimal (int64: kept as a string). */
  readonly id: string
  /** The lease id in lowercase hex, as etcd's Go client writes it into lock and election keys. */
  readonly hex: string
  /** The TTL etcd granted, in seconds. */
  readonly ttl: number
  /**
   * Aborts the moment this lease is lost, revoked, or may have expired: by a timer set to `deadline`
   * minus a safety margin (`leaseMarginMs(ttl)`), so it fires before etcd can give the lease's locks to
   * someone else.
   */
  readonly signal: AbortSignal
  /**
   * The earliest moment etcd may expire the lease, on the local monotonic clock (`performance.now()`
   * milliseconds): the send time of the last acknowledged keepalive (or of the grant request) plus the TTL.
   */
  readonly deadline: number
}

/**
 * How long before its deadline a lease is given up: room for a late timer and clock-rate drift between
 * this process and etcd. 5% of the TTL, at least 200 ms and at most 1 s (ttl 10: 500 ms).
 */
export function leaseMarginMs(ttl: number): number {
  return Math.min(1_000, Math.max(200, ttl * 50))
}

interface LeaseState extends Lease {
  controller: AbortController
  deadline: number
}

export interface SessionEvents {
  state: [state: SessionState]
  /** A new lease was granted (the first, or a replacement for a lost one). */
  lease: [lease: Lease]
  /** A lease was lost; `reason` says how. */
  lost: [lease: Lease, reason: string]
}

/**
 * One lease per kit, kept alive on one keepalive stream. A lost lease is replaced by a new one with
 * jittered backoff, for ever, until the session is closed.
 */
export class Session extends EventEmitter<SessionEvents> {
  readonly ttl: number
  readonly #client: LeaseClient
  readonly #streams: StreamSource
  readonly #log: Logger
  readonly #grantBackoff = new Backoff(100, 5_000)
  #state: SessionState = 'connecting'
  #lease: LeaseState | undefined
  #keepAlive: KeepAlive | undefined
  #timer: NodeJS.Timeout | undefined
  #waiters = new Set<ReturnType<typeof deferred<Lease>>>()
  #granting = false
  /** Why the last grant was refused for good (credentials): waiters are told; the next wait tries again. */
  #refused: EtcdKitError | undefined
  #started = false

  /**
   * @param client grants and revokes (through the kit's pool, any member)
   * @param streams where the keepalive stream goes
   */
  constructor(client: LeaseClient, ttl: number, log: Logger, streams: StreamSource) {
    super()
    this.#client = client
    this.ttl = ttl
    this.#log = log
    recordSessionState(undefined, this.#state)
    this.#streams = streams
  }

  /** The endpoint the keepalive stream is on now, if one is open. */
  get endpoint(): string | undefined {
    return this.#keepAlive?.endpoint
  }

  get state(): SessionState {
    return this.#state
  }

  /** Whether `start()` was called (by a registration, a lock or an election). */
  get started(): boolean {
    return this.#started
  }

  /** The current lease, if the session has one that is not known lost. */
  get lease(): Lease | undefined {
    return this.#lease
  }

  /** Starts granting the first lease (idempotent). */
  start() {
    if (this.#started) return
    this.#started = true
    this.#grant()
  }

  /**
   * Resolves with a live lease: the current one, or the next one granted. Rejects when `signal` aborts
   * or the session closes.
   */
  leaseReady(signal?: AbortSignal): Promise<Lease> {
    if (this.#state === 'closed') return Promise.reject(new ClosedError('the etcd session'))
    this.start()
    if (this.#lease && this.#state !== 'lost') return Promise.resolve(this.#lease)
    signal?.throwIfAborted()
    if (this.#refused) {
      // the grant loop stopped on a refusal: this wait makes one new attempt
      this.#refused = undefined
      this.#grant()
    }
    const d = deferred<Lease>()
    this.#waiters.add(d)
    const onAbort = () => {
      this.#waiters.delete(d)
      d.reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    return d.promise.finally(() => signal?.removeEventListener('abort', onAbort))
  }

  /**
   * Reports that etcd refused an operation because `lease` does not exist any more (found out by a
   * caller before the keepalive did): the session replaces it.
   */
  leaseNotFound(lease: Lease) {
    if (this.#lease?.id === lease.id) this.#lose('etcd reports the lease not found')
  }

  /** Revokes the lease (its keys go with it) and stops. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    const lease = this.#lease
    this.#lease = undefined
    this.#setState('closed')
    clearTimeout(this.#timer)
    this.#keepAlive?.stop()
    this.#keepAlive = undefined
    for (const w of this.#waiters) w.reject(new ClosedError('the etcd session'))
    this.#waiters.clear()
    if (lease) {
      lease.controller.abort(new ClosedError('the etcd session'))
      try {
        await this.#client.leaseRevoke({ ID: lease.id })
      } catch (err) {
        // the lease still expires on its own after its TTL
        // the keepalive has stopped: the lease, and every key on it, expires on its own after its TTL
        this.#log.warn(
          { err, lease: lease.hex, ttl: lease.ttl },
          'could not revoke the etcd lease on close; it expires after its TTL',
        )
      }
    }
  }

  #setState(state: SessionState) {
    if (this.#state === state) return
    recordSessionState(this.#state, state)
    this.#state = state
    this.emit('state', state)
  }

  #grant() {
    if (this.#granting || this.#state === 'closed') return
    this.#granting = true
    // etcd starts the TTL when it handles the grant, after this: a safe start for the deadline
    const askedAt = performance.now()
    this.#client
      .leaseGrant({ TTL: this.ttl, ID: 0 })
      .then((res) => {
        this.#granting = false
        this.#streams.answered(undefined) // a unary call returned: etcd is reachable again
        if (this.#state === 'closed') {
          this.#client.leaseRevoke({ ID: res.ID }).catch(() => {})
          return
        }
        this.#grantBackoff.reset()
        const controller = new AbortController()
        const lease: LeaseState = {
          id: res.ID,
          hex: BigInt(res.ID).toString(16),
          ttl: Number(res.TTL),
          signal: controller.signal,
          controller,
          deadline: askedAt + Number(res.TTL) * 1000,
        }
        this.#lease = lease
        this.#setState('alive')
        this.#log.debug({ lease: lease.hex, ttl: lease.ttl }, 'etcd lease granted')
        this.emit('lease', lease)
        for (const w of this.#waiters) w.resolve(lease)
        this.#waiters.clear()
        this.#startKeepAlive(lease)
      })
      .catch((err: unknown) => {
        this.#granting = false
        if (this.#state === 'closed') return
        if (isTerminal(err)) {
          // wrong credentials: retrying cannot help, and nothing waiting may hang on it
          const error = etcdError(err, 'granting the session lease')
          this.#refused = error
          this.#log.error({ err: error }, 'etcd refused the session lease')
          for (const w of this.#waiters) w.reject(error)
          this.#waiters.clear()
          return
        }
        const delay = this.#grantBackoff.next()
        this.#log.debug({ err, delay }, 'could not grant an etcd lease; retrying')
        if (this.#waiters.size > 0 && this.#state === 'connecting') this.#unavailable = err
        this.#timer = setTimeout(() => this.#grant(), delay)
      })
  }

  /** The last error seen while no lease could be granted, for messages. */
  #unavailable: unknown

  /** An error describing why no lease is available, for callers that give up waiting. */
  unavailableError(endpoints: readonly string[], waitedMs: number): EtcdUnavailableError {
    const cause = this.#unavailable
    const detail = cause instanceof Error ? `: ${cause.message}` : ''
    return new EtcdUnavailableError(
      `no etcd lease after ${waitedMs} ms from ${endpoints.join(', ')} (session ${this.#state})${detail}`,
      cause,
    )
  }

  #startKeepAlive(lease: LeaseState) {
    this.#keepAlive?.stop()
    this.#keepAlive = new KeepAlive(lease, this.#streams, this.#log, {
      onAnswer: () => {
        if (this.#state === 'suspect') this.#setState('alive')
      },
      onSilent: () => {
        if (this.#state === 'alive') this.#setState('suspect')
      },
      onExpired: (reason) => this.#lose(reason),
    })
  }

  #lose(reason: string) {
    const lease = this.#lease
    if (!lease || this.#state === 'closed') return
    this.#lease = undefined
    clearTimeout(this.#timer)
    this.#keepAlive?.stop()
    this.#keepAlive = undefined
    this.#setState('lost')
    this.#log.warn({ lease: lease.hex, reason }, 'etcd lease lost; granting a new one')
    recordLeaseLoss(reason)
    lease.controller.abort(new Error(`lease ${lease.hex} lost: ${reason}`))
    this.emit('lost', lease, reason)
    // If etcd still has it (the loss was seen on our clock first), revoke it so that what hung off it
    // (locks, registrations) is released now rather than after its TTL.
    this.#client.leaseRevoke({ ID: lease.id }).catch(() => {})
    if (this.#state !== 'lost') return // a 'lost' listener closed the session
    this.#setState('connecting')
    this.#timer = setTimeout(() => this.#grant(), this.#grantBackoff.next())
  }
}

type KeepAliveStream = Awaited<ReturnType<LeaseClient['leaseKeepAlive']>>

/** One keepalive stream and the send times of its keepalives not answered yet, oldest first. */
interface Channel {
  readonly stream: KeepAliveStream
  readonly endpoint: string
  readonly openedAt: number
  readonly sentAt: number[]
  /** The stream has answered once: its member is known to listen. */
  answered: boolean
}

interface KeepAliveEvents {
  /** A keepalive was answered. */
  onAnswer(): void
  /** No answer for a third of the TTL. */
  onSilent(): void
  /** The deadline (minus the margin) passed, or etcd says the lease is gone. */
  onExpired(reason: string): void
}

/**
 * Keeps one lease alive, and decides when it may have expired.
 *
 * - Sends a keepalive every TTL/12 (at least 100 ms), on a timer of its own: with the deadline counted
 *   from each keepalive's send time, a round trip up to TTL - margin - TTL/12 keeps the deadline ahead,
 *   even when it grows suddenly (ttl 3: 2.55 s). Not faster while answers are late: a slow etcd must not
 *   get more keepalives from every process. Lost means etcd may have expired the lease, never that an
 *   answer was late: answers are matched to their keepalives in order, per stream, and a slow one still
 *   moves the deadline.
 * - Gives the lease up by a one-shot timer at `deadline - margin`, re-armed by each answer that moves the
 *   deadline: not by a poll, which would fire up to one period late.
 * - When the stream's member gives no answer for a third of the TTL and there are other members, opens a
 *   new stream on another one (the silent member is avoided for a while). The old stream stays open
 *   for one TTL: answers it still delivers count, in case it was only slow.
 */
class KeepAlive {
  readonly #lease: LeaseState
  readonly #streams: StreamSource
  readonly #log: Logger
  readonly #on: KeepAliveEvents
  readonly #backoff = new Backoff(50, 1_000)
  readonly #intervalMs: number
  readonly #silentMs: number
  readonly #marginMs: number
  readonly #draining = new Map<Channel, NodeJS.Timeout>()
  #current: Channel | undefined
  #opening = false
  #lastAnswerAt: number
  #sendTimer: NodeJS.Timeout | undefined
  #reopenTimer: NodeJS.Timeout | undefined
  #expiryTimer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(lease: LeaseState, streams: StreamSource, log: Logger, on: KeepAliveEvents) {
    this.#lease = lease
    this.#streams = streams
    this.#log = log
    this.#on = on
    const ttlMs = lease.ttl * 1000
    this.#intervalMs = Math.max(100, ttlMs / 12)
    this.#silentMs = ttlMs / 3
    this.#marginMs = leaseMarginMs(lease.ttl)
    this.#lastAnswerAt = performance.now()
    this.#armExpiry()
    this.#open()
    this.#scheduleSend()
  }

  get endpoint(): string | undefined {
    return this.#current?.endpoint
  }

  stop() {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#sendTimer)
    clearTimeout(this.#reopenTimer)
    clearTimeout(this.#expiryTimer)
    if (this.#current) cancelStream(this.#current.stream)
    this.#current = undefined
    for (const [channel, timer] of this.#draining) {
      clearTimeout(timer)
      cancelStream(channel.stream)
    }
    this.#draining.clear()
  }

  #armExpiry() {
    clearTimeout(this.#expiryTimer)
    // setTimeout fires at once past 2^31 - 1 ms: wait in steps for a very long TTL
    const delay = Math.min(this.#lease.deadline - this.#marginMs - performance.now(), 2 ** 31 - 1)
    this.#expiryTimer = setTimeout(
      () => {
        if (this.#stopped) return
        if (performance.now() < this.#lease.deadline - this.#marginMs) return this.#armExpiry()
        this.#on.onExpired(
          `no keepalive answer within the ${this.#lease.ttl} s TTL (less a ${this.#marginMs} ms margin): etcd may have expired it`,
        )
      },
      Math.max(0, delay),
    )
  }

  #scheduleSend() {
    this.#sendTimer = setTimeout(() => {
      if (this.#stopped) return
      this.#check()
      this.#send()
      this.#scheduleSend()
    }, this.#intervalMs)
  }

  #send() {
    const channel = this.#current
    if (!channel) return
    // answers that never come (a silent member) must not grow the record for ever; dropping a send time
    // instead would match later answers to later sends, and move the deadline too far
    if (channel.sentAt.length >= 256) return
    // a stream that never answered (opened while etcd is down) gets one keepalive, not one per period: the
    // rest would wait in grpc-js's buffer and reach etcd together, with every other kit's, when it is back
    if (!channel.answered && channel.sentAt.length > 0) return
    channel.sentAt.push(performance.now())
    channel.stream.write({ ID: this.#lease.id })
  }

  /** Silence for a third of the TTL: suspect, and move to another member when there is one. */
  #check() {
    const now = performance.now()
    if (now - this.#lastAnswerAt <= this.#silentMs) return
    this.#on.onSilent()
    const channel = this.#current
    if (!channel || !this.#streams.several) return
    // each member gets a third of the TTL to answer before the stream moves on
    if (now - Math.max(this.#lastAnswerAt, channel.openedAt) <= this.#silentMs) return
    this.#log.warn(
      { endpoint: channel.endpoint, lease: this.#lease.hex, silentMs: Math.round(now - this.#lastAnswerAt) },
      'etcd keepalive stream not answering; moving it to another member',
    )
    this.#streams.failed(channel.endpoint)
    this.#current = undefined
    this.#draining.set(
      channel,
      setTimeout(() => {
        this.#draining.delete(channel)
        cancelStream(channel.stream)
      }, this.#lease.ttl * 1000),
    )
    this.#open()
  }

  #open() {
    if (this.#stopped || this.#opening || this.#current) return
    this.#opening = true
    const { endpoint, leaseClient } = this.#streams.pick()
    leaseClient
      .leaseKeepAlive()
      .then((stream) => {
        this.#opening = false
        if (this.#stopped) {
          cancelStream(stream)
          return
        }
        const channel: Channel = {
          stream,
          endpoint,
          openedAt: performance.now(),
          sentAt: [],
          answered: false,
        }
        this.#current = channel
        stream.on('data', (res: ILeaseKeepAliveResponse) => this.#onAnswer(channel, res))
        stream.on('error', (err: unknown) => this.#onBroken(channel, err))
        stream.on('end', () => this.#onBroken(channel, new Error('keepalive stream ended')))
        this.#send()
      })
      .catch((err: unknown) => {
        this.#opening = false
        this.#streams.failed(endpoint)
        this.#reopen(err)
      })
  }

  #onAnswer(channel: Channel, res: ILeaseKeepAliveResponse) {
    if (this.#stopped) return
    const sent = channel.sentAt.shift()
    if (sent === undefined) return
    channel.answered = true
    if (Number(res.TTL) <= 0) return this.#on.onExpired('etcd reports the lease expired')
    this.#lastAnswerAt = performance.now()
    recordKeepalive(this.#lastAnswerAt - sent)
    if (channel === this.#current) this.#backoff.reset()
    const deadline = sent + Number(res.TTL) * 1000
    if (deadline > this.#lease.deadline) {
      this.#lease.deadline = deadline
      this.#armExpiry()
    }
    this.#on.onAnswer()
    this.#streams.answered(channel.endpoint)
  }

  #onBroken(channel: Channel, err: unknown) {
    const draining = this.#draining.get(channel)
    if (draining) {
      clearTimeout(draining)
      this.#draining.delete(channel)
    }
    cancelStream(channel.stream)
    if (this.#current !== channel || this.#stopped) return
    this.#current = undefined
    this.#streams.failed(channel.endpoint)
    this.#reopen(err)
  }

  #reopen(err: unknown) {
    if (this.#stopped) return
    const delay = this.#backoff.next()
    this.#log.debug({ err, delay }, 'etcd keepalive stream broken; reopening')
    clearTimeout(this.#reopenTimer)
    this.#reopenTimer = setTimeout(() => this.#open(), delay)
  }
}

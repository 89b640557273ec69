import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { ILeaseKeepAliveResponse, LeaseClient } from 'etcd3'
import { ClosedError, EtcdUnavailableError } from './errors.js'
import type { Logger } from './logger.js'
import { recordKeepalive, recordLeaseLoss, recordSessionState } from './metrics.js'
import { Backoff, cancelStream, deferred } from './util.js'

/**
 * `connecting`: no lease yet (or a new one is being granted); `alive`: the lease is kept alive;
 * `suspect`: no keepalive answer for a third of the TTL; `lost`: the lease is gone or its TTL ran out
 * without an answer; `closed`: the session was closed and its lease revoked.
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
  /** Aborts the moment this lease is lost, expired on the local clock, or revoked. */
  readonly signal: AbortSignal
  /**
   * When etcd may expire the lease, on the local monotonic clock (`performance.now()` milliseconds):
   * the send time of the last acknowledged keepalive plus the TTL.
   */
  readonly deadline: number
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
  readonly #log: Logger
  readonly #grantBackoff = new Backoff(100, 5_000)
  readonly #streamBackoff = new Backoff(50, 1_000)
  #state: SessionState = 'connecting'
  #lease: LeaseState | undefined
  #stream: Awaited<ReturnType<LeaseClient['leaseKeepAlive']>> | undefined
  #tick: NodeJS.Timeout | undefined
  #timer: NodeJS.Timeout | undefined
  #waiters = new Set<ReturnType<typeof deferred<Lease>>>()
  #lastAck = 0
  #granting = false
  #started = false

  constructor(client: LeaseClient, ttl: number, log: Logger) {
    super()
    this.#client = client
    this.ttl = ttl
    this.#log = log
    recordSessionState(undefined, this.#state)
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
    clearInterval(this.#tick)
    clearTimeout(this.#timer)
    cancelStream(this.#stream)
    this.#stream = undefined
    for (const w of this.#waiters) w.reject(new ClosedError('the etcd session'))
    this.#waiters.clear()
    if (lease) {
      lease.controller.abort(new ClosedError('the etcd session'))
      try {
        await this.#client.leaseRevoke({ ID: lease.id })
      } catch (err) {
        // the lease still expires on its own after its TTL
        this.#log.warn({ err, lease: lease.hex }, 'could not revoke the etcd lease on close')
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
    this.#client
      .leaseGrant({ TTL: this.ttl, ID: 0 })
      .then((res) => {
        this.#granting = false
        if (this.#state === 'closed') {
          this.#client.leaseRevoke({ ID: res.ID }).catch(() => {})
          return
        }
        this.#grantBackoff.reset()
        const now = performance.now()
        const controller = new AbortController()
        const lease: LeaseState = {
          id: res.ID,
          hex: BigInt(res.ID).toString(16),
          ttl: Number(res.TTL),
          signal: controller.signal,
          controller,
          deadline: now + Number(res.TTL) * 1000,
        }
        this.#lease = lease
        this.#lastAck = now
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
    const intervalMs = Math.max(500, (lease.ttl * 1000) / 3)
    let sentAt: number[] = []
    const send = () => {
      if (!this.#stream) return
      sentAt.push(performance.now())
      if (sentAt.length > 16) sentAt = sentAt.slice(-16)
      this.#stream.write({ ID: lease.id })
    }
    const open = () => {
      if (this.#lease !== lease || this.#state === 'closed') return
      this.#client
        .leaseKeepAlive()
        .then((stream) => {
          if (this.#lease !== lease || this.#state === 'closed') {
            cancelStream(stream)
            return
          }
          this.#streamBackoff.reset()
          this.#stream = stream
          sentAt = []
          stream.on('data', (res: ILeaseKeepAliveResponse) => {
            if (this.#lease !== lease) return
            const sent = sentAt.shift() ?? performance.now()
            recordKeepalive(performance.now() - sent)
            if (Number(res.TTL) <= 0) return this.#lose('etcd reports the lease expired')
            this.#lastAck = sent
            lease.deadline = sent + Number(res.TTL) * 1000
            if (this.#state === 'suspect') this.#setState('alive')
          })
          const broken = (err: unknown) => {
            if (this.#stream !== stream) return
            this.#stream = undefined
            cancelStream(stream)
            if (this.#lease !== lease) return
            const delay = this.#streamBackoff.next()
            this.#log.debug({ err, delay }, 'etcd keepalive stream broken; reopening')
            this.#timer = setTimeout(open, delay)
          }
          stream.on('error', broken)
          stream.on('end', () => broken(new Error('keepalive stream ended')))
          send()
        })
        .catch((err: unknown) => {
          if (this.#lease !== lease) return
          const delay = this.#streamBackoff.next()
          this.#log.debug({ err, delay }, 'could not open the etcd keepalive stream; retrying')
          this.#timer = setTimeout(open, delay)
        })
    }
    open()
    clearInterval(this.#tick)
    // The tick both sends keepalives and checks the deadline on the monotonic clock: etcd3's own
    // lease waits for 2 x TTL before it reports a loss, though etcd expires the lease after 1 x TTL.
    const checkEvery = Math.min(intervalMs, 250)
    let lastSend = performance.now()
    this.#tick = setInterval(() => {
      if (this.#lease !== lease) return
      const now = performance.now()
      if (now >= lease.deadline) return this.#lose(`no keepalive answer within the ${lease.ttl} s TTL`)
      if (now - this.#lastAck > intervalMs + checkEvery && this.#state === 'alive') this.#setState('suspect')
      if (now - lastSend >= intervalMs) {
        lastSend = now
        send()
      }
    }, checkEvery)
  }

  #lose(reason: string) {
    const lease = this.#lease
    if (!lease || this.#state === 'closed') return
    this.#lease = undefined
    clearInterval(this.#tick)
    clearTimeout(this.#timer)
    cancelStream(this.#stream)
    this.#stream = undefined
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

import { EventEmitter } from 'node:events'
import { EtcdLeaseInvalidError, type IKeyValue } from 'etcd3'
import {
  AlreadyCampaigningError,
  ClosedError,
  type EtcdKitError,
  etcdError,
  InvalidArgumentError,
  isTerminal,
  NotLeaderError,
  show,
} from '../errors.js'
import { PrefixFollower } from '../etcd/follow.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { Lease, Session } from '../etcd/session.js'
import type { WatchHub } from '../etcd/watch.js'
import type { Logger } from '../ops/logger.js'
import { Backoff, deferred, liveValues, sleep } from '../util.js'
import { checkKeys, checkLockName, checkSignal, checkText, isPlainObject } from '../validate.js'
import { HeldKey, type HoldContext, type LossWording } from './held-key.js'
import { type QueueEntry, readQueue } from './holders.js'
import { LockActivity } from './lock-activity.js'
import { OwnKeyGone, type Position, type QueueHub, waitTurn } from './queue.js'

/** The leader of an election: the candidate whose key was created first. */
export interface Leader {
  /** The leader's key, `{name}/{lease id in lowercase hex}` (kit-relative). */
  readonly key: string
  /** The leader's proposal (its key's value, UTF-8). */
  readonly value: string
  /** The create revision of the leader's key: it grows with every new leader (usable as a fencing token). */
  readonly revision: bigint
  /** The leader's lease id in lowercase hex. */
  readonly lease: string
}

export interface CampaignOptions {
  /** Gives up campaigning when it aborts: the candidate key is deleted; `campaign()` rejects with its reason. */
  signal?: AbortSignal
}

/** This kit's leadership of an election, from `campaign()` until `resign()` or its loss. */
export interface Leadership extends AsyncDisposable {
  readonly name: string
  /** Our key, `{name}/{lease hex}`. */
  readonly key: string
  /** Its create revision: the fencing token of this term. */
  readonly revision: bigint
  /** The value currently proclaimed. */
  readonly value: string
  /**
   * Aborts the moment leadership is lost or can no longer be proven (session lease lost or expired on the
   * local clock, key deleted: `LockLostError`) or is given up (`resign()`: `LockReleasedError`).
   */
  readonly signal: AbortSignal
  /** Changes the proclaimed value, only while still leader; else rejects with `NotLeaderError`. */
  proclaim(value: string): Promise<void>
  /** Deletes our key (the next candidate becomes leader). Idempotent. */
  resign(): Promise<void>
}

export interface ElectionObserverEvents {
  /** The leader changed (a new leader, a new value proclaimed, or no leader any more: `undefined`). */
  change: [leader: Leader | undefined]
  /**
   * The candidates cannot be read any more (permission denied, authentication failed): `leader` is no
   * longer current. Emitted only when listened to (an unheard `error` would throw).
   */
  error: [error: EtcdKitError]
  close: []
}

function toLeader(ks: Keyspace, kv: IKeyValue): Leader {
  return {
    key: ks.name(kv.key),
    value: kv.value.toString(),
    revision: BigInt(kv.create_revision),
    lease: BigInt(kv.lease).toString(16),
  }
}

function sameLeader(a: Leader | undefined, b: Leader | undefined) {
  return (
    a === b ||
    (a !== undefined &&
      b !== undefined &&
      a.key === b.key &&
      a.revision === b.revision &&
      a.value === b.value)
  )
}

function checkValue(value: unknown): string {
  return checkText(value, 'election proposal')
}

/** @internal the kit's elections, one object per name */
export class ElectionHub {
  readonly #elections = new Map<string, Election>()
  /** What this kit's campaigns and leaderships are doing, for holders(), health(), metrics and logs. */
  readonly activity: LockActivity
  #closed = false

  constructor(
    readonly ks: Keyspace,
    readonly session: Session,
    readonly queues: QueueHub,
    readonly watchHub: WatchHub,
    readonly log: Logger,
  ) {
    this.activity = new LockActivity('election', log)
  }

  get closed() {
    return this.#closed
  }

  election(name: unknown): Election {
    const checked = checkLockName(name, 'election name')
    let e = this.#elections.get(checked)
    if (!e) {
      e = new Election(this, checked)
      this.#elections.set(checked, e)
    }
    return e
  }

  async close() {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([...this.#elections.values()].map((e) => closeElection(e)))
  }
}

/** Ends an election's campaign, observers and leadership: the hub's, on kit close (not public API). */
let closeElection: (election: Election) => Promise<void>

/**
 * A leader election in etcd's Go `concurrency.Election` format (what `etcdctl elect` uses): each candidate
 * puts `{name}/{lease hex}` = its proposal on its lease; the leader is the key created first.
 */
export class Election {
  readonly name: string
  readonly #hub: ElectionHub
  readonly #observers = new Set<ElectionObserver>()
  #campaign: AbortController | undefined
  #leadership: LeadershipImpl | undefined

  /** @internal use `kit.election(name)` */
  constructor(hub: ElectionHub, name: string) {
    this.#hub = hub
    this.name = name
  }

  /** Whether this kit currently leads the election. */
  get isLeader(): boolean {
    return this.#leadership?.signal.aborted === false
  }

  /** This kit's leadership, while it leads. */
  get leadership(): Leadership | undefined {
    return this.isLeader ? this.#leadership : undefined
  }

  /**
   * Puts our candidate key with `value` and waits until it is the oldest: resolves with the leadership.
   * Already leader: proclaims `value` and resolves at once. Rejects with `AlreadyCampaigningError` while
   * another `campaign()` of this kit on this election is waiting, and with the signal's reason on abort.
   */
  async campaign(value: string, options?: CampaignOptions): Promise<Leadership> {
    checkValue(value)
    if (options !== undefined && !isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid campaign options ${show(options)}`)
    if (options !== undefined) checkKeys(options, ['signal'], 'campaign')
    const user = checkSignal(options?.signal)
    if (this.#hub.closed) throw new ClosedError('the kit')
    user?.throwIfAborted()
    if (this.#campaign)
      throw new AlreadyCampaigningError(`this kit is already campaigning in election ${show(this.name)}`)
    const current = this.#leadership
    if (current?.signal.aborted === false) {
      await current.proclaim(value)
      return current
    }
    const ctrl = new AbortController()
    this.#campaign = ctrl
    const onUserAbort = () => ctrl.abort(user?.reason)
    user?.addEventListener('abort', onUserAbort, { once: true })
    try {
      this.#leadership = await this.#hub.activity.waitFor(this.name, this.#run(value, ctrl.signal))
      return this.#leadership
    } finally {
      user?.removeEventListener('abort', onUserAbort)
      this.#campaign = undefined
    }
  }

  /** Changes the proclaimed value; rejects with `NotLeaderError` unless this kit leads. */
  async proclaim(value: string): Promise<void> {
    checkValue(value)
    const l = this.#leadership
    if (!l || l.signal.aborted)
      throw new NotLeaderError(`this kit does not lead election ${show(this.name)}: cannot proclaim`)
    await l.proclaim(value)
  }

  /** Gives up leadership (the next candidate leads). A no-op when this kit does not lead. */
  async resign(): Promise<void> {
    await this.#leadership?.resign()
  }

  /** The current leader, read from etcd (one read), or `undefined` when nobody campaigns. */
  async leader(): Promise<Leader | undefined> {
    const range = this.#hub.ks.range(`${this.name}/`)
    const res = await this.#hub.ks.kv
      .range({ ...range, sort_order: 'Ascend', sort_target: 'Create', limit: 1 })
      .catch((err: unknown) => {
        throw etcdError(
          err,
          `reading the leader of election ${show(this.name)} (key prefix ${show(`${this.name}/`)})`,
        )
      })
    const kv = res.kvs[0]
    return kv ? toLeader(this.#hub.ks, kv) : undefined
  }

  /**
   * The election's queue in etcd, leader first: each candidate key with its lease, create revision, proposal
   * and the session record of the process behind it (`unknown` for `etcdctl elect` or Go candidates).
   */
  holders(): Promise<QueueEntry[]> {
    return readQueue(this.#hub.ks, this.name, this.#hub.session, this.#hub.activity)
  }

  /** A live view of the leader: `change` events and async iteration, until `close()`. */
  observe(): ElectionObserver {
    if (this.#hub.closed) throw new ClosedError('the kit')
    const o = new ElectionObserver(this.#hub, this.name, () => this.#observers.delete(o))
    this.#observers.add(o)
    return o
  }

  static {
    closeElection = (election) => election.#close()
  }

  async #close() {
    this.#campaign?.abort(new ClosedError('the kit'))
    for (const o of [...this.#observers]) o.close()
    await this.#leadership?.resign(false)
  }

  async #run(value: string, signal: AbortSignal): Promise<LeadershipImpl> {
    const { ks, session, log } = this.#hub
    const q = this.#hub.queues.get(`${this.name}/`)
    const unuse = q.use()
    let lease: Lease | undefined
    let key: Buffer | undefined
    try {
      const backoff = new Backoff(50, 1_000)
      for (;;) {
        signal.throwIfAborted()
        lease = await session.leaseReady(signal)
        key = ks.key(`${this.name}/${lease.hex}`)
        let pos: Position
        try {
          // Go's Campaign: put our key if it is not there, else keep it (and its place) and proclaim
          const res = await ks.kv.txn({
            compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [
              { request_put: { key, value: Buffer.from(value), lease: lease.id } },
              { request_range: { ...q.range, sort_order: 'Descend', sort_target: 'Create', limit: 2 } },
            ],
            failure: [{ request_range: { key } }],
          })
          const revision = BigInt(res.header.revision)
          if (res.succeeded) {
            pos = {
              key,
              revision,
              readRevision: revision,
              predecessor: res.responses[1]?.response_range.kvs[1],
            }
          } else {
            const own = res.responses[0]?.response_range.kvs[0]
            if (!own) continue
            const ownRevision = BigInt(own.create_revision)
            if (own.value.toString() !== value) {
              const put = await ks.kv.txn({
                compare: [
                  { key, target: 'Create', result: 'Equal', create_revision: ownRevision.toString() },
                ],
                success: [{ request_put: { key, value: Buffer.from(value), lease: lease.id } }],
                failure: [],
              })
              if (!put.succeeded) continue
            }
            pos = {
              key,
              revision: ownRevision,
              readRevision: revision,
              predecessor: undefined,
              unknown: true,
            }
          }
        } catch (err) {
          if (isTerminal(err))
            throw etcdError(
              err,
              `campaigning in election ${show(this.name)} (key prefix ${show(`${this.name}/`)})`,
            )
          if (err instanceof EtcdLeaseInvalidError) session.leaseNotFound(lease)
          else {
            log.debug({ err, election: this.name }, 'campaign txn failed; retrying')
            await sleep(backoff.next(), signal)
          }
          continue
        }
        let readRevision = pos.readRevision
        try {
          readRevision = await waitTurn(ks, q, pos, [signal, lease.signal])
        } catch (err) {
          signal.throwIfAborted()
          if (isTerminal(err))
            throw etcdError(
              err,
              `campaigning in election ${show(this.name)} (key prefix ${show(`${this.name}/`)})`,
            )
          if (err instanceof OwnKeyGone || lease.signal.aborted) continue
          log.debug({ err, election: this.name }, 'campaign wait failed; retrying')
          await sleep(backoff.next(), signal)
          continue
        }
        const context = {
          name: this.name,
          fullKey: key,
          revision: pos.revision,
          readRevision,
          lease,
          queue: q,
          unuse,
        }
        return new LeadershipImpl(this.#hub, context, value)
      }
    } catch (err) {
      if (key && lease && !lease.signal.aborted) await ks.kv.deleteRange({ key }).catch(() => {})
      unuse()
      throw err
    }
  }
}

/** How a leader speaks about losing its leadership. */
const LEADER_LOSS: LossWording = {
  log: (name, _term, reason) => [{ election: name, reason }, 'leadership lost'],
  error: (name, reason) => `leadership of election ${show(name)} lost: ${reason}`,
}

class LeadershipImpl implements Leadership {
  readonly name: string
  readonly key: string
  readonly revision: bigint
  #value: string
  readonly #hub: ElectionHub
  readonly #holder: HeldKey
  #resigning: Promise<void> | undefined

  constructor(hub: ElectionHub, context: HoldContext, value: string) {
    this.#hub = hub
    this.#holder = new HeldKey(hub, context, LEADER_LOSS)
    this.name = context.name
    this.key = this.#holder.key
    this.revision = context.revision
    this.#value = value
  }

  get value() {
    return this.#value
  }

  get signal() {
    return this.#holder.signal
  }

  async proclaim(value: string): Promise<void> {
    checkValue(value)
    if (this.#holder.signal.aborted)
      throw new NotLeaderError(`this kit does not lead election ${show(this.name)} any more: cannot proclaim`)
    const { fullKey, lease } = this.#holder
    const res = await this.#hub.ks.kv
      .txn({
        compare: [this.#holder.ownKey],
        success: [{ request_put: { key: fullKey, value: Buffer.from(value), lease: lease.id } }],
        failure: [],
      })
      .catch((err: unknown) => {
        throw etcdError(err, `proclaiming in election ${show(this.name)} (key ${show(this.key)})`)
      })
    if (!res.succeeded) {
      this.#holder.lose(`its key ${show(this.key)} is gone`)
      throw new NotLeaderError(`this kit does not lead election ${show(this.name)} any more: cannot proclaim`)
    }
    this.#value = value
  }

  resign(wait = true): Promise<void> {
    this.#resigning ??= (async () => {
      this.#holder.giveUp(`resigned from election ${show(this.name)}`)
      const backoff = new Backoff(50, 1_000)
      const { fullKey, lease } = this.#holder
      try {
        for (;;) {
          try {
            // Go's Resign: delete our key only if it is still this term's
            await this.#hub.ks.kv.txn({
              compare: [this.#holder.ownKey],
              success: [{ request_delete_range: { key: fullKey } }],
              failure: [],
            })
            return
          } catch (err) {
            if (!wait || lease.signal.aborted || isTerminal(err)) {
              this.#hub.log.warn(
                { err, key: this.key },
                'could not delete the leader key; it goes with its lease',
              )
              return
            }
            await sleep(backoff.next(), lease.signal).catch(() => {})
          }
        }
      } finally {
        this.#holder.done()
      }
    })()
    return this.#resigning
  }

  [Symbol.asyncDispose]() {
    return this.resign()
  }
}

/**
 * A live view of an election's leader (Go's `Election.Observe`, plus "no leader"): every candidate key is
 * read once, then followed on the kit's watch stream; `leader` is always current, a property read.
 */
export class ElectionObserver extends EventEmitter<ElectionObserverEvents> implements AsyncDisposable {
  readonly name: string
  /** Resolves once the candidates were read the first time. */
  readonly ready: Promise<void>
  readonly #hub: ElectionHub
  readonly #onClose: () => void
  readonly #candidates = new Map<string, IKeyValue>()
  readonly #ready = deferred<void>()
  readonly #follower: PrefixFollower
  #leader: Leader | undefined
  #closed = false

  /** @internal use `election.observe()` */
  constructor(hub: ElectionHub, name: string, onClose: () => void) {
    super()
    this.#hub = hub
    this.name = name
    this.#onClose = onClose
    this.ready = this.#ready.promise
    this.ready.catch(() => {})
    const { ks, watchHub, log } = hub
    this.#follower = new PrefixFollower(ks, watchHub, log, `${name}/`, `election watch of ${show(name)}`, {
      onList: (kvs) => {
        this.#candidates.clear()
        for (const kv of kvs) this.#candidates.set(kv.key.toString('latin1'), kv)
        this.#update()
        this.#ready.resolve()
      },
      onEvents: (events) => {
        for (const ev of events) {
          const k = ev.kv.key.toString('latin1')
          if (ev.type === 'Delete') this.#candidates.delete(k)
          else this.#candidates.set(k, ev.kv)
        }
        this.#update()
      },
      onError: (error) => {
        this.#ready.reject(error)
        if (this.listenerCount('error') > 0) this.emit('error', error)
      },
    })
    this.#follower.start()
  }

  /** The current leader, `undefined` when nobody campaigns (or before `ready`). */
  get leader(): Leader | undefined {
    return this.#leader
  }

  /** Yields the current leader, then every change, until `close()`. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Leader | undefined, void, undefined> {
    await this.ready
    yield* liveValues<Leader | undefined>(this, 'change', () => this.#leader)
  }

  close() {
    if (this.#closed) return
    this.#closed = true
    this.#follower.close()
    this.#ready.reject(new ClosedError('the election observer'))
    this.#onClose()
    this.emit('close')
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close()
    return Promise.resolve()
  }

  #update() {
    let first: IKeyValue | undefined
    for (const kv of this.#candidates.values())
      if (!first || BigInt(kv.create_revision) < BigInt(first.create_revision)) first = kv
    const leader = first ? toLeader(this.#hub.ks, first) : undefined
    if (sameLeader(leader, this.#leader)) return
    this.#leader = leader
    this.emit('change', leader)
  }
}

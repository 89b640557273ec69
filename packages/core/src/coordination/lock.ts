import {
  EtcdLeaseInvalidError,
  type IRangeRequest,
  type IRequestOp,
  type ITxnRequest,
  type ITxnResponse,
} from 'etcd3'
import {
  ClosedError,
  etcdError,
  InvalidArgumentError,
  isTerminal,
  LockTimeoutError,
  NotLockOwnerError,
  show,
} from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import { deleteLeasedKey } from '../etcd/leased-delete.js'
import type { Lease, Session } from '../etcd/session.js'
import type { Logger } from '../ops/logger.js'
import { Backoff, deadline, sleep } from '../util.js'
import { checkKeys, checkLockName, checkMs, checkSignal, isPlainObject } from '../validate.js'
import { HeldKey, type HoldContext, type LossWording } from './held-key.js'
import { type QueueEntry, readQueue } from './holders.js'
import { LockActivity } from './lock-activity.js'
import { AHEAD_LIMIT, OwnKeyGone, type Position, type PrefixQueue, type QueueHub, waitTurn } from './queue.js'

const EMPTY = Buffer.alloc(0)

export interface AcquireOptions {
  /** Gives up waiting when it aborts: the waiting key is deleted and the call rejects with the signal's reason. */
  signal?: AbortSignal
  /**
   * Gives up after this many milliseconds (waiting for a session lease included) with `ETCDKIT_LOCK_TIMEOUT`;
   * the waiting key is deleted. @default no limit
   */
  timeout?: number
}

/**
 * Writes applied only while a lock is held: one etcd txn guarded by the lock key's create revision (the
 * fencing token). Keys are kit-relative (the kit namespace is put in front); values are written without a
 * lease.
 */
export interface GuardedWrites {
  /** Keys to put, with their values. */
  put?: Record<string, string | Buffer>
  /** Keys to delete. */
  delete?: readonly string[]
}

/** A lock this kit holds, until `release()` or until it is lost (then `signal` aborts). */
export interface HeldLock extends AsyncDisposable {
  /** The lock name. */
  readonly name: string
  /** The lock key, `{name}/{lease id in lowercase hex}` (kit-relative), as etcd's Go `Mutex` writes it. */
  readonly key: string
  /**
   * The create revision of the lock key: it grows with every holder of this lock, so a resource that keeps
   * the largest token it has seen can refuse writes from an older holder. A `bigint` (etcd revisions are
   * int64); send it as `String(token)`.
   */
  readonly fencingToken: bigint
  /**
   * Aborts the moment the lock is no longer held or can no longer be proven held: the session lease was
   * lost or its TTL ran out on the local monotonic clock since the last keepalive answer (reason: a
   * `LockLostError`, `ETCDKIT_LOCK_LOST`), the key was deleted by someone else (same), or `release()` was
   * called (`LockReleasedError`, `ETCDKIT_LOCK_RELEASED`). A lost lock is never taken again silently.
   */
  readonly signal: AbortSignal
  /** Whether the lock is still held as far as this process can tell (`!signal.aborted`). */
  readonly held: boolean
  /**
   * Applies `writes` in one etcd txn if and only if the lock key still exists with this fencing token (Go's
   * `IsOwner` compare): resolves to whether they were applied. etcd decides, not the local clock, so a
   * holder that was paused past its lease cannot write once the next holder may have started.
   */
  ifOwner(writes?: GuardedWrites): Promise<boolean>
  /** Like `ifOwner`, but rejects with `NotLockOwnerError` (`ETCDKIT_NOT_LOCK_OWNER`) when refused. */
  assertOwner(writes?: GuardedWrites): Promise<void>
  /**
   * Deletes the lock key (the next waiter takes over) and aborts `signal`. Idempotent; never rejects: while
   * etcd cannot be reached it retries until the key is gone or its lease is (the lock is free either way).
   */
  release(): Promise<void>
}

/** A distributed lock on one name; `kit.lock(name)`. Cheap: make one per call if convenient. */
export class Lock {
  readonly name: string
  readonly #hub: LockHub

  /** @internal use `kit.lock(name)` */
  constructor(hub: LockHub, name: string) {
    this.#hub = hub
    this.name = name
  }

  /**
   * Waits its turn (first come, first served across every process, by create revision) and resolves with
   * the held lock. Rejects with `LockTimeoutError` after `timeout`, with the signal's reason when `signal`
   * aborts, with `ClosedError` when the kit closes; a waiting key is deleted in every case.
   */
  acquire(options?: AcquireOptions): Promise<HeldLock> {
    return this.#hub.acquire(this.name, options)
  }

  /**
   * Takes the lock if it is free right now (one txn: nothing is written when it is not); resolves with the
   * held lock, or `undefined` when someone holds or waits for it (in this process or another). It waits
   * only for the session's first lease, up to the kit's `callTimeout`.
   */
  tryAcquire(): Promise<HeldLock | undefined> {
    return this.#hub.tryAcquire(this.name)
  }

  /**
   * The lock's queue in etcd, holder first: each key with its lease, create revision and the session record
   * of the process behind it (`unknown` for `etcdctl lock` or Go holders); one read, plus one per 100 leases.
   */
  holders(): Promise<QueueEntry[]> {
    return readQueue(this.#hub.ks, this.name, this.#hub.session, this.#hub.activity)
  }

  /** Acquires, runs `fn` with the held lock, and releases, also when `fn` throws. Resolves with `fn`'s result. */
  async run<T>(fn: (held: HeldLock) => T | Promise<T>, options?: AcquireOptions): Promise<T> {
    if (typeof fn !== 'function')
      throw new InvalidArgumentError(`invalid lock.run() callback ${show(fn)}: expected a function`)
    const held = await this.acquire(options)
    try {
      return await fn(held)
    } finally {
      await held.release()
    }
  }
}

interface Ticket {
  /** Resolves when every earlier acquire of this name in this kit is done. */
  turn: Promise<void>
  /** Lets the next one in. Idempotent. */
  leave(): void
}

interface Slot {
  tail: Promise<void>
  pending: number
}

function checkAcquireOptions(options: unknown): {
  timeout: number | undefined
  signal: AbortSignal | undefined
} {
  if (options === undefined) return { timeout: undefined, signal: undefined }
  if (!isPlainObject(options)) throw new InvalidArgumentError(`invalid acquire options ${show(options)}`)
  checkKeys(options, ['signal', 'timeout'], 'acquire')
  const signal = checkSignal(options.signal)
  const { timeout } = options
  return { signal, timeout: timeout === undefined ? undefined : checkMs(timeout, 'lock timeout', true) }
}

/** The raw ops of `writes`, checked. */
function guardedOps(ks: Keyspace, writes: unknown): IRequestOp[] {
  if (writes === undefined) return []
  const bad = (why: string) => new InvalidArgumentError(`invalid guarded writes ${show(writes)}: ${why}`)
  if (!isPlainObject(writes)) throw bad('expected { put?: { key: value }, delete?: [key] }')
  checkKeys(writes, ['put', 'delete'], 'guarded writes')
  const ops: IRequestOp[] = []
  const { put, delete: del } = writes
  if (put !== undefined) {
    if (!isPlainObject(put)) throw bad('put must be an object of key: value')
    for (const [k, v] of Object.entries(put)) {
      if (k === '') throw bad('a key is empty')
      if (typeof v !== 'string' && !Buffer.isBuffer(v))
        throw bad(`the value of ${show(k)} is not a string or Buffer`)
      ops.push({ request_put: { key: ks.key(k), value: typeof v === 'string' ? Buffer.from(v) : v } })
    }
  }
  if (del !== undefined) {
    if (!Array.isArray(del)) throw bad('delete must be an array of keys')
    for (const k of del as unknown[]) {
      if (typeof k !== 'string' || k === '') throw bad(`${show(k)} is not a key`)
      ops.push({ request_delete_range: { key: ks.key(k) } })
    }
  }
  return ops
}

/** Where the acquire txn left us (Go's `tryAcquire`, plus our predecessor when we just wrote our key). */
function position(res: ITxnResponse, key: Buffer): Position {
  const owner = res.responses[1]?.response_range.kvs[0]
  if (res.succeeded) {
    const revision = BigInt(res.header.revision)
    // [own key, predecessor, ...]: ours is the newest key of the prefix, written by this very txn
    const newest = res.responses[2]?.response_range
    const predecessor = owner && BigInt(owner.create_revision) !== revision ? newest?.kvs[1] : undefined
    return {
      key,
      revision,
      readRevision: revision,
      predecessor,
      unknown: predecessor === undefined && owner !== undefined && BigInt(owner.create_revision) !== revision,
      ahead: predecessor && newest && !newest.more ? newest.kvs.slice(1) : undefined,
      farthest: predecessor && newest?.more ? newest.kvs.at(-1) : undefined,
    }
  }
  // our key was there already (an earlier attempt on this lease): it keeps its place in the queue
  const own = res.responses[0]?.response_range.kvs[0]
  const revision = own ? BigInt(own.create_revision) : 0n
  const first = owner !== undefined && BigInt(owner.create_revision) === revision
  return { key, revision, readRevision: BigInt(res.header.revision), predecessor: undefined, unknown: !first }
}

/**
 * The kit's locks: an in-process queue per name (one lease means one key, so two acquires of one name in
 * one process take turns here before either touches etcd), and the etcd protocol of Go's
 * `concurrency.Mutex` on `{name}/{lease hex}`.
 * @internal
 */
export class LockHub {
  readonly #slots = new Map<string, Slot>()
  readonly #held = new Set<HeldLockImpl>()
  readonly #attempts = new Set<AbortController>()
  /** What this kit's locks are doing, for holders(), health(), metrics and debug logs. */
  readonly activity: LockActivity
  #closed = false
  #closing: Promise<void> | undefined

  constructor(
    readonly ks: Keyspace,
    readonly session: Session,
    readonly queues: QueueHub,
    readonly log: Logger,
    readonly endpoints: readonly string[],
    readonly callTimeout: number,
  ) {
    this.activity = new LockActivity('lock', log)
  }

  lock(name: unknown): Lock {
    return new Lock(this, checkLockName(name))
  }

  acquire(name: string, options: AcquireOptions | undefined): Promise<HeldLock> {
    let timeout: number | undefined
    let user: AbortSignal | undefined
    try {
      ;({ timeout, signal: user } = checkAcquireOptions(options))
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#closed) return Promise.reject(new ClosedError('the kit'))
    if (user?.aborted) return Promise.reject(user.reason)
    const ctrl = new AbortController()
    this.#attempts.add(ctrl)
    const onUserAbort = () => ctrl.abort(user?.reason)
    user?.addEventListener('abort', onUserAbort, { once: true })
    const timer =
      timeout === undefined
        ? undefined
        : setTimeout(
            () =>
              ctrl.abort(new LockTimeoutError(`could not acquire lock ${show(name)} within ${timeout} ms`)),
            timeout,
          )
    const ticket = this.#enter(name)
    const attempt = ticket.turn.then(() => this.#acquire(name, ctrl.signal, ticket))
    const held = new Promise<HeldLock>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer)
        user?.removeEventListener('abort', onUserAbort)
        ctrl.signal.removeEventListener('abort', onAbort)
        this.#attempts.delete(ctrl)
      }
      // reject at once; the attempt deletes its key and lets the next one in when its current call returns
      const onAbort = () => {
        finish()
        reject(ctrl.signal.reason)
      }
      ctrl.signal.addEventListener('abort', onAbort, { once: true })
      attempt.then(
        (held) => {
          if (ctrl.signal.aborted) {
            void held.release()
            return
          }
          finish()
          resolve(held)
        },
        (err: unknown) => {
          finish()
          reject(err)
        },
      )
    })
    return this.activity.waitFor(name, held)
  }

  async tryAcquire(name: string): Promise<HeldLock | undefined> {
    if (this.#closed) throw new ClosedError('the kit')
    if ((this.#slots.get(name)?.pending ?? 0) > 0) return undefined
    const ticket = this.#enter(name)
    const q = this.queues.get(`${name}/`)
    const unuse = q.use()
    let held: HeldLockImpl | undefined
    try {
      for (;;) {
        const wait = deadline(this.callTimeout)
        const lease = await this.session
          .leaseReady(wait.signal)
          .catch((err: unknown) => {
            if (this.#closed || isTerminal(err)) throw err
            throw this.session.unavailableError(this.endpoints, this.callTimeout)
          })
          .finally(wait.done)
        const key = this.ks.key(`${name}/${lease.hex}`)
        let res: ITxnResponse
        try {
          res = await this.ks.kv.txn({
            // an empty range compares as a key with create revision 0: "nobody holds or waits"
            compare: [{ ...q.range, target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [{ request_put: { key, value: EMPTY, lease: lease.id } }],
            failure: [{ request_range: { key } }, { request_range: firstCreated(q) }],
          })
        } catch (err) {
          if (err instanceof EtcdLeaseInvalidError) {
            this.session.leaseNotFound(lease)
            continue
          }
          throw etcdError(err, `trying lock ${show(name)} (key prefix ${show(`${name}/`)})`)
        }
        if (res.succeeded) {
          const revision = BigInt(res.header.revision)
          const context = { name, fullKey: key, revision, readRevision: revision, lease, queue: q, unuse }
          held = new HeldLockImpl(this, context, ticket.leave)
          return held
        }
        const own = res.responses[0]?.response_range.kvs[0]
        const owner = res.responses[1]?.response_range.kvs[0]
        if (own && owner && own.create_revision === owner.create_revision) {
          // our key from an earlier attempt on this lease is first: it is ours (Go's Mutex does the same)
          const context = {
            name,
            fullKey: key,
            revision: BigInt(own.create_revision),
            readRevision: BigInt(res.header.revision),
            lease,
            queue: q,
            unuse,
          }
          held = new HeldLockImpl(this, context, ticket.leave)
          return held
        }
        // a leftover key of ours behind someone else would hold up everyone behind it
        if (own) await this.remove(key, lease, false)
        return undefined
      }
    } finally {
      if (!held) {
        unuse()
        ticket.leave()
      }
    }
  }

  /** Releases every held lock and abandons every waiting acquire (the kit revokes its lease right after). */
  close(): Promise<void> {
    // a second call shares the first: it resolves when the locks are released, not before
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close() {
    this.#closed = true
    for (const ctrl of this.#attempts) ctrl.abort(new ClosedError('the kit'))
    await Promise.allSettled([...this.#held].map((h) => h.release(false)))
  }

  /**
   * Deletes a lock key; with `retry`, until it is gone or its lease is (the shared `deleteLeasedKey`), else
   * once (on close: the lease is revoked right after). Never rejects.
   */
  async remove(key: Buffer, lease: Lease, retry = true) {
    const giveUp = (err: unknown) =>
      this.log.warn({ err, key: key.toString() }, 'could not delete a lock key; it goes with its lease')
    if (retry) {
      await deleteLeasedKey(this.ks.kv, key, lease, () => {}, false).catch(giveUp)
      return
    }
    try {
      await this.ks.kv.deleteRange({ key })
    } catch (err) {
      giveUp(err)
    }
  }

  track(held: HeldLockImpl, on: boolean) {
    if (on) this.#held.add(held)
    else this.#held.delete(held)
  }

  #enter(name: string): Ticket {
    let slot = this.#slots.get(name)
    if (!slot) {
      slot = { tail: Promise.resolve(), pending: 0 }
      this.#slots.set(name, slot)
    }
    const s = slot
    const turn = s.tail
    let open!: () => void
    s.tail = new Promise<void>((resolve) => {
      open = resolve
    })
    s.pending++
    let left = false
    return {
      turn,
      leave: () => {
        if (left) return
        left = true
        open()
        if (--s.pending === 0 && this.#slots.get(name) === s) this.#slots.delete(name)
      },
    }
  }

  async #acquire(name: string, signal: AbortSignal, ticket: Ticket): Promise<HeldLockImpl> {
    const q = this.queues.get(`${name}/`)
    const unuse = q.use()
    let lease: Lease | undefined
    let key: Buffer | undefined
    try {
      const backoff = new Backoff(50, 1_000)
      for (;;) {
        signal.throwIfAborted()
        lease = await this.session.leaseReady(signal)
        key = this.ks.key(`${name}/${lease.hex}`)
        let pos: Position
        try {
          pos = position(await this.ks.kv.txn(acquireTxn(q, key, lease)), key)
        } catch (err) {
          if (isTerminal(err)) throw etcdError(err, `acquiring lock ${show(name)} (key ${show(`${name}/`)}…)`)
          if (err instanceof EtcdLeaseInvalidError) this.session.leaseNotFound(lease)
          else {
            this.log.debug({ err, lock: name }, 'lock acquire txn failed; retrying')
            await sleep(backoff.next(), signal)
          }
          continue
        }
        let readRevision = pos.readRevision
        if (pos.predecessor !== undefined || pos.unknown) {
          try {
            readRevision = await waitTurn(this.ks, q, pos, [signal, lease.signal])
          } catch (err) {
            signal.throwIfAborted()
            if (isTerminal(err))
              throw etcdError(err, `waiting for lock ${show(name)} (key prefix ${show(`${name}/`)})`)
            // our lease or our key is gone: queue again (at the back) under the session's next lease
            if (err instanceof OwnKeyGone || lease.signal.aborted) continue
            this.log.debug({ err, lock: name }, 'lock wait failed; retrying')
            await sleep(backoff.next(), signal)
            continue
          }
        }
        const context = { name, fullKey: key, revision: pos.revision, readRevision, lease, queue: q, unuse }
        return new HeldLockImpl(this, context, ticket.leave)
      }
    } catch (err) {
      // our key must not stay: everyone behind it would wait for our lease to end
      if (key && lease && !lease.signal.aborted) await this.remove(key, lease)
      unuse()
      ticket.leave()
      throw err
    }
  }
}

function firstCreated(q: PrefixQueue): IRangeRequest {
  return { ...q.range, sort_order: 'Ascend', sort_target: 'Create', limit: 1 }
}

/**
 * Go's `Mutex.tryAcquire`: if our key does not exist, put it on the lease and read the first key by create
 * revision (and, unlike Go, the newest: ours, our predecessor and the keys ahead of it, up to
 * `AHEAD_LIMIT`, so a waiter needs no read before waiting nor when its turn comes); else read our key and
 * the first.
 */
function acquireTxn(q: PrefixQueue, key: Buffer, lease: Lease): ITxnRequest {
  return {
    compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
    success: [
      { request_put: { key, value: EMPTY, lease: lease.id } },
      { request_range: firstCreated(q) },
      { request_range: { ...q.range, sort_order: 'Descend', sort_target: 'Create', limit: AHEAD_LIMIT + 1 } },
    ],
    failure: [{ request_range: { key } }, { request_range: firstCreated(q) }],
  }
}

/** How a lock speaks about being lost. */
const LOCK_LOSS: LossWording = {
  log: (name, token, reason) => [{ lock: name, fencingToken: String(token), reason }, 'lock lost'],
  error: (name, reason) => `lock ${show(name)} lost: ${reason}`,
}

class HeldLockImpl implements HeldLock {
  readonly name: string
  readonly key: string
  readonly fencingToken: bigint
  readonly #hub: LockHub
  readonly #holder: HeldKey
  readonly #leave: () => void
  #releasing: Promise<void> | undefined

  /** `leave` gives the in-process turn of the name to the next acquire. */
  constructor(hub: LockHub, context: HoldContext, leave: () => void) {
    this.#hub = hub
    this.#holder = new HeldKey(hub, context, LOCK_LOSS)
    this.name = context.name
    this.key = this.#holder.key
    this.fencingToken = context.revision
    this.#leave = leave
    hub.track(this, true)
  }

  get signal(): AbortSignal {
    return this.#holder.signal
  }

  get held(): boolean {
    return !this.#holder.signal.aborted
  }

  async ifOwner(writes?: GuardedWrites): Promise<boolean> {
    const ops = guardedOps(this.#hub.ks, writes)
    const res = await this.#hub.ks.kv
      .txn({ compare: [this.#holder.ownKey], success: ops, failure: [] })
      .catch((err: unknown) => {
        throw etcdError(err, `writing under lock ${show(this.name)} (key ${show(this.key)})`)
      })
    return res.succeeded
  }

  async assertOwner(writes?: GuardedWrites): Promise<void> {
    if (!(await this.ifOwner(writes)))
      throw new NotLockOwnerError(
        `lock ${show(this.name)} is not held with fencing token ${this.fencingToken} any more: write refused`,
      )
  }

  release(wait = true): Promise<void> {
    this.#releasing ??= (async () => {
      this.#holder.giveUp(`lock ${show(this.name)} was released`)
      try {
        await this.#hub.remove(this.#holder.fullKey, this.#holder.lease, wait)
      } finally {
        this.#hub.track(this, false)
        this.#holder.done()
        this.#leave()
      }
    })()
    return this.#releasing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release()
  }
}

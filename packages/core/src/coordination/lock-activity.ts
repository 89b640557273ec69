// What this kit's locks (or elections) are doing: who waits since when, what is held since when.
import { performance } from 'node:perf_hooks'
import type { Logger } from '../ops/logger.js'
import { recordElection, recordHold, recordWait } from '../ops/metrics.js'

/** One lock or election this kit holds or waits for. */
export interface OwnQueueState {
  name: string
  /** `held`: this kit holds the lock (leads the election); `waiting`: an acquire (campaign) is pending. */
  state: 'held' | 'waiting'
  /** How long it has been held, or how long the oldest pending acquire has waited, in ms. */
  forMs: number
  /** Acquires (campaigns) of this name pending in this kit. */
  waiters: number
}

interface Held {
  key: string
  since: number
}

/**
 * The bookkeeping behind `holders()` durations, `health()`, the lock metrics and the debug log lines of
 * one kit's locks (`kind` lock) or elections (`kind` election). Times are on the monotonic clock.
 */
export class LockActivity {
  /** name -> start times of the pending acquires, oldest first (they take their turns in that order) */
  readonly #waiting = new Map<string, number[]>()
  readonly #held = new Map<string, Held>()

  constructor(
    readonly kind: 'lock' | 'election',
    private readonly log: Logger,
  ) {}

  /** Tracks the wait of one acquire (campaign) of `name`; returns `attempt`, unchanged. */
  waitFor<T>(name: string, attempt: Promise<T>): Promise<T> {
    const start = performance.now()
    const starts = this.#waiting.get(name) ?? []
    this.#waiting.set(name, starts)
    starts.push(start)
    const done = (outcome: string) => {
      const list = this.#waiting.get(name)
      const i = list?.indexOf(start) ?? -1
      if (list && i >= 0) list.splice(i, 1)
      if (list?.length === 0) this.#waiting.delete(name)
      recordWait(this.kind, name, performance.now() - start, outcome)
    }
    attempt.then(
      () => done('acquired'),
      (err: unknown) => done(outcomeOf(err)),
    )
    return attempt
  }

  /** `name` is held now, under `key` (called once the lock or leadership is taken). */
  held(name: string, key: string, token: bigint) {
    const now = performance.now()
    const waitMs = Math.round(now - (this.#waiting.get(name)?.[0] ?? now))
    this.#held.set(name, { key, since: now })
    if (this.kind === 'election') recordElection(name, 'elected')
    this.log.debug(
      { [this.kind]: name, key, fencingToken: String(token), waitMs },
      this.kind === 'lock' ? 'lock acquired' : 'election won',
    )
  }

  /** `name` (held under `key`) is held no more: released (resigned) or lost. */
  ended(name: string, key: string, how: 'released' | 'lost', reason?: string) {
    const h = this.#held.get(name)
    if (!h || h.key !== key) return
    this.#held.delete(name)
    const heldMs = Math.round(performance.now() - h.since)
    recordHold(this.kind, name, heldMs, how)
    if (this.kind === 'election') recordElection(name, how === 'released' ? 'resigned' : 'lost')
    const what =
      this.kind === 'lock' ? `lock ${how}` : how === 'lost' ? 'leadership lost' : 'leadership resigned'
    this.log.debug({ [this.kind]: name, key, heldMs, ...(reason ? { reason } : {}) }, what)
  }

  /** What this kit holds and waits for now. */
  snapshot(): OwnQueueState[] {
    const now = performance.now()
    const out: OwnQueueState[] = []
    const names = new Set([...this.#held.keys(), ...this.#waiting.keys()])
    for (const name of names) {
      const h = this.#held.get(name)
      const waiting = this.#waiting.get(name) ?? []
      out.push({
        name,
        state: h ? 'held' : 'waiting',
        forMs: Math.round(now - (h ? h.since : (waiting[0] ?? now))),
        waiters: waiting.length,
      })
    }
    return out
  }

  /** How long this kit has held `name`, or waited for it (its oldest pending acquire), in ms. */
  ownDuration(name: string): number | undefined {
    const now = performance.now()
    const h = this.#held.get(name)
    if (h) return Math.round(now - h.since)
    const first = this.#waiting.get(name)?.[0]
    return first === undefined ? undefined : Math.round(now - first)
  }
}

function outcomeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ETCDKIT_LOCK_TIMEOUT') return 'timeout'
  if (code === 'ETCDKIT_CLOSED') return 'closed'
  if ((err as { name?: unknown } | null)?.name === 'AbortError') return 'aborted'
  return 'error'
}

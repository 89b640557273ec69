// The decorated classes of the decorator tests. test/legacy/fixtures.ts and test/standard/fixtures.ts are
// the same text (a test checks it), compiled with experimentalDecorators and with standard decorators.
import { setTimeout as sleep } from 'node:timers/promises'
import {
  bindEtcdKit,
  Config,
  currentLock,
  OnConfigChange,
  WithLock,
  type WithLockOptions,
} from '@etcdkit/decorators'
import { Tag } from '../helpers.js'

/** Records when each call's body starts and ends, in one list shared by every instance. */
export type Interval = { who: string; enter: number; exit: number }

export function reportJob(lock: string, options?: WithLockOptions) {
  class ReportJob {
    readonly log: Interval[]
    inside = 0
    constructor(log: Interval[] = []) {
      this.log = log
    }

    @WithLock(lock, options)
    @Tag('report')
    async run(who: string, ms: number): Promise<string | undefined> {
      const enter = performance.now()
      this.inside++
      await sleep(ms)
      this.inside--
      this.log.push({ who, enter, exit: performance.now() })
      return who
    }
  }
  return ReportJob
}

export function inspector(lock: string) {
  class Inspector {
    readonly marker = 'inspector'
    entered = false

    /** Reports the lock in force, then waits until `currentLock().signal` aborts (the lock is lost). */
    @WithLock(lock)
    async hold(): Promise<{ self: string; name?: string; token?: bigint; held?: boolean; reason: unknown }> {
      const held = currentLock()
      const heldAtStart = held?.held
      this.entered = true
      const signal = held?.signal
      const reason = await new Promise((resolve) => {
        if (!signal) return resolve(undefined)
        signal.addEventListener('abort', () => resolve(signal.reason), { once: true })
      })
      return { self: this.marker, name: held?.name, token: held?.fencingToken, held: heldAtStart, reason }
    }

    /** The lock seen inside, and whether a nested call of another @WithLock method of the same lock ran. */
    @WithLock(lock)
    async outer(): Promise<{ token?: bigint; inner?: bigint }> {
      return { token: currentLock()?.fencingToken, inner: await this.inner() }
    }

    @WithLock(lock)
    async inner(): Promise<bigint | undefined> {
      return currentLock(lock)?.fencingToken
    }
  }
  return Inspector
}

export function limits(key: string) {
  class Limits {
    @Config(key, { parse: Number, validate: (n: number) => Number.isInteger(n) && n > 0, default: 10 })
    limit!: number

    @Config(key)
    text!: string | undefined

    readonly seen: number[] = []

    @OnConfigChange(key)
    @Tag('limit-handler')
    onLimit(value: number) {
      this.seen.push(value)
    }
  }
  return Limits
}

/** Uses whatever kit is the default: it binds itself in its constructor, as legacy define-semantics code must. */
export function defaultLimits(key: string, lock: string) {
  class DefaultLimits {
    @Config(key, { parse: Number, default: 5 })
    limit!: number

    readonly seen: number[] = []

    constructor() {
      bindEtcdKit(this)
    }

    @OnConfigChange(key)
    onLimit(value: number) {
      this.seen.push(value)
    }

    @WithLock(lock)
    async token(): Promise<bigint | undefined> {
      return currentLock()?.fencingToken
    }
  }
  return DefaultLimits
}

/** No binding at all: used with no default kit, every decorated member must fail naming itself. */
export function unbound(key: string, lock: string) {
  class Unbound {
    @Config(key)
    value!: string

    @WithLock(lock)
    async work(): Promise<void> {}
  }
  return Unbound
}

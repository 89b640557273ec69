import { setTimeout as sleep } from 'node:timers/promises'
import { bindEtcdKit, Config, currentLock, OnConfigChange, WithLock } from '@etcdkit/decorators'

/** Builds the daily report: on one instance of the service at a time, cluster-wide. */
export class ReportJob {
  runs = 0

  constructor(readonly instance: string) {
    // follow the default kit (the one @etcdkit/fastify created); in legacy mode this also turns class
    // fields into the live @Config getters
    bindEtcdKit(this)
  }

  @Config('reports/batch', {
    parse: Number,
    validate: (n: number) => Number.isInteger(n) && n > 0,
    default: 50,
  })
  batch!: number

  /** Skips (and says so) when another instance is building the report right now. */
  @WithLock('/jobs/report', {
    wait: false,
    onBusy(this: ReportJob) {
      console.log(`[${this.instance}] the report is being built (here or on another instance): skipped`)
      return undefined
    },
  })
  async build(): Promise<number | undefined> {
    const lock = currentLock()!
    console.log(
      `[${this.instance}] building the report (fencing token ${lock.fencingToken}, batch ${this.batch})`,
    )
    for (let page = 0; page < 5; page++) {
      if (lock.signal.aborted) {
        console.log(`[${this.instance}] lock lost or released: stopping`)
        return undefined
      }
      await sleep(200, undefined, { signal: lock.signal }).catch(() => {})
    }
    return ++this.runs
  }
}

/** A per-second request limit that follows `config/reports/rate-limit` (or `config/reports/reports/rate-limit`). */
export class RateLimit {
  #window = 0
  #count = 0

  constructor() {
    bindEtcdKit(this)
  }

  @Config('rate-limit', { parse: Number, validate: (n: number) => Number.isInteger(n) && n >= 0, default: 5 })
  limit!: number

  @OnConfigChange('rate-limit')
  limitChanged(limit: number) {
    console.log(`rate limit is now ${limit}/s`)
  }

  /** Whether one more request fits in this second. */
  take(): boolean {
    const second = Math.floor(Date.now() / 1_000)
    if (second !== this.#window) {
      this.#window = second
      this.#count = 0
    }
    return ++this.#count <= this.limit
  }
}

// Least-loaded balancing, the retry budget and a latency window: pure arithmetic on numbers, no I/O and no
// timers; every function takes the time (ms, any monotonic origin) from its caller, so tests drive a fake clock.

/**
 * What the balancer knows about one endpoint: a peak-sensitive EWMA of its latency and its requests in
 * flight. The service client keeps one per endpoint and reports to it through `LeastLoaded`.
 */
export class EndpointLoad {
  /** The latency estimate (ms) as of `stamp`; decays toward 0 as time passes without observations. */
  ewma = 0
  stamp = 0
  /** Whether any latency was observed; until then the endpoint costs the neutral estimate. */
  observed = false
  /** Requests sent and not yet answered, and the sum of their start times (for their mean age). */
  pending = 0
  startSum = 0
  /** When it joined; its weight ramps up over the warm-up from then. `-Infinity`: no warm-up. */
  since = Number.NEGATIVE_INFINITY
  weight = 1
}

export interface LeastLoadedOptions {
  /**
   * The decay time constant (ms): an observation's weight falls by e every `decay` ms. Time-based rather
   * than per-sample, so the estimate means the same at 1 request/s and at 100,000/s. @default 1_000
   */
  decay?: number
  /** Over how long (ms) an instance that joins later ramps from 10% to its full weight. @default 10_000 */
  warmUp?: number
  /** A number in [0, 1): `Math.random` unless a test gives its own. */
  random?: () => number
}

/** A failed attempt is observed as at least this many times the neutral estimate: failing fast is no merit. */
const FAILURE_PENALTY = 5
/** The weight share a joining instance starts with. */
const WARM_START = 0.1

/**
 * Power of two choices over the cost `peak EWMA latency x (pending + 1) / weight` (Finagle's and Linkerd's
 * P2C + peak EWMA, Envoy's least-request). Two distinct endpoints are drawn at random and the cheaper one
 * wins, so the slowest endpoint of a set is never picked while the estimate holds, and no endpoint gets a
 * herd because it looked best a moment ago.
 *
 * Peak EWMA: a latency above the estimate replaces it at once (slowness is believed immediately); a latency
 * below is blended in with weight `1 - exp(-elapsed / decay)`; and when no request is answered the estimate
 * decays toward 0, so an endpoint that was shunned is tried again after about `decay x ln(its ratio to the
 * others)` and comes back if it recovered. Endpoints never observed cost the neutral estimate (an EWMA of
 * every observation of the set, so neither a magnet nor shunned), and one that joins after the first
 * `update()` warms up: when it wins a pair it keeps the win only with a probability that ramps from 10%
 * to 100% over `warmUp` ms, so its share grows gradually instead of a herd arriving at once.
 */
export class LeastLoaded<T> {
  readonly #loadOf: (item: T) => EndpointLoad
  readonly #decay: number
  readonly #warmUp: number
  readonly #random: () => number
  #items: readonly T[] = []
  #known = new Set<EndpointLoad>()
  #first = true
  /** The neutral estimate: a plain EWMA over every observation of every endpoint. */
  #neutral = 0
  #neutralStamp = 0

  constructor(loadOf: (item: T) => EndpointLoad, options: LeastLoadedOptions = {}) {
    this.#loadOf = loadOf
    this.#decay = options.decay ?? 1_000
    this.#warmUp = options.warmUp ?? 10_000
    this.#random = options.random ?? Math.random
  }

  get items(): readonly T[] {
    return this.#items
  }

  get size(): number {
    return this.#items.length
  }

  /** Replaces the item set. Items not seen before start warming up at `now` (not on the first call). */
  update(items: readonly T[], weightOf: (item: T) => number, now: number): void {
    const known = new Set<EndpointLoad>()
    for (const item of items) {
      const load = this.#loadOf(item)
      load.weight = weightOf(item)
      if (!this.#first && !this.#known.has(load) && !load.observed && load.since === -Infinity)
        load.since = now
      known.add(load)
    }
    this.#first = false
    this.#known = known
    this.#items = items
  }

  /** The cost of an endpoint at `now`: lower is better. */
  cost(load: EndpointLoad, now: number): number {
    return (this.#latency(load, now) * (load.pending + 1)) / load.weight
  }

  /**
   * Its latency estimate at `now`: the decayed peak EWMA (the neutral one, or 1 before any observation,
   * until it is observed), and at least the mean age of its requests in flight: an endpoint that just
   * turned slow is known to be slow from its unanswered requests, before the first slow answer arrives.
   */
  #latency(load: EndpointLoad, now: number): number {
    const age = load.pending > 0 ? now - load.startSum / load.pending : 0
    let estimate: number
    if (load.observed) estimate = this.#decayed(load, now)
    else if (this.#neutral === 0) estimate = 1
    else {
      const elapsed = now - this.#neutralStamp
      estimate = elapsed <= 0 ? this.#neutral : this.#neutral * Math.exp(-elapsed / this.#decay)
    }
    return Math.max(age, estimate)
  }

  /**
   * Two distinct items drawn at random among those `accept`s (every item when omitted), the cheaper one;
   * `undefined` when none is accepted. With one accepted, that one. `items`: a subset of the last
   * `update()`'s (the instances of the preferred zone), else all of them.
   */
  next(now: number, accept?: (item: T) => boolean, items: readonly T[] = this.#items): T | undefined {
    const n = items.length
    if (n === 0) return undefined
    if (n === 1) return accept === undefined || accept(items[0]!) ? items[0] : undefined
    const i = Math.floor(this.#random() * n)
    let j = Math.floor(this.#random() * (n - 1))
    if (j >= i) j++
    const a = items[i]!
    const b = items[j]!
    if (accept === undefined || (accept(a) && accept(b))) {
      const la = this.#loadOf(a)
      const lb = this.#loadOf(b)
      const [win, lose, lw] = this.cost(lb, now) < this.cost(la, now) ? [b, a, lb] : [a, b, la]
      // a warming winner keeps its win with the probability of its warmth: its share ramps up
      const warmth = this.#warmth(lw, now)
      return warmth < 1 && this.#random() >= warmth ? lose : win
    }
    // some refused (half-open breakers, a retry's tried endpoints): the cheapest accepted, by a scan
    let best: T | undefined
    let bestCost = Number.POSITIVE_INFINITY
    for (let k = 0; k < n; k++) {
      const item = items[(i + k) % n]!
      if (!accept(item)) continue
      const c = this.cost(this.#loadOf(item), now)
      if (c < bestCost) {
        best = item
        bestCost = c
      }
    }
    return best
  }

  /** A request was sent to the endpoint at `now`. */
  started(load: EndpointLoad, now: number): void {
    load.pending++
    load.startSum += now
  }

  /** A request sent at `started` ended without telling anything of the endpoint (its breaker refused it). */
  dropped(load: EndpointLoad, started: number): void {
    if (load.pending === 0) return
    load.pending--
    load.startSum = load.pending === 0 ? 0 : load.startSum - started
  }

  /**
   * Its request ended after `ms`: answered (`failed` false), or failed or abandoned (`failed` true: counted
   * as at least `FAILURE_PENALTY` times the neutral estimate).
   */
  finished(load: EndpointLoad, ms: number, now: number, failed = false): void {
    this.dropped(load, now - ms)
    const rtt = failed ? Math.max(ms, this.#neutral * FAILURE_PENALTY) : ms
    if (!failed) {
      const w = Math.exp(-Math.max(0, now - this.#neutralStamp) / this.#decay)
      this.#neutral = this.#neutral === 0 ? rtt : this.#neutral * w + rtt * (1 - w)
      this.#neutralStamp = now
    }
    if (!load.observed) {
      load.observed = true
      load.ewma = rtt
      load.stamp = now
      return
    }
    const decayed = this.#decayed(load, now)
    if (rtt >= decayed) load.ewma = rtt
    else {
      const w = Math.exp(-Math.max(0, now - load.stamp) / this.#decay)
      load.ewma = decayed + rtt * (1 - w)
    }
    load.stamp = now
  }

  #decayed(load: EndpointLoad, now: number): number {
    const elapsed = now - load.stamp
    return elapsed <= 0 ? load.ewma : load.ewma * Math.exp(-elapsed / this.#decay)
  }

  /** How warm a joining endpoint is: 10% at first, 100% after `warmUp`. */
  #warmth(load: EndpointLoad, now: number): number {
    const age = now - load.since
    if (age >= this.#warmUp) return 1
    return WARM_START + ((1 - WARM_START) * Math.max(0, age)) / this.#warmUp
  }
}

export interface RetryBudgetOptions {
  /** Extra attempts allowed per request sent, over the window (0.2: 20% extra load). */
  ratio: number
  /** Extra attempts allowed per second whatever the request rate, so a quiet client can still retry. */
  minPerSecond: number
  /** The window over which requests and extra attempts are counted (ms). @default 10_000 */
  window?: number
}

const BUCKETS = 10

/**
 * Finagle's and Envoy's retry budget: extra attempts (retries, hedges) within the last `window` may number
 * at most `ratio` x the requests sent in it, plus `minPerSecond` x the window in seconds. Counted in ten
 * buckets that rotate as time passes, so a request costs an add and a comparison.
 */
export class RetryBudget {
  readonly #ratio: number
  readonly #reserve: number
  readonly #bucketMs: number
  readonly #deposits = new Float64Array(BUCKETS)
  readonly #withdrawals = new Float64Array(BUCKETS)
  #bucket = Number.NEGATIVE_INFINITY
  #deposited = 0
  #withdrawn = 0

  constructor(options: RetryBudgetOptions) {
    const window = options.window ?? 10_000
    this.#ratio = options.ratio
    this.#reserve = (options.minPerSecond * window) / 1_000
    this.#bucketMs = window / BUCKETS
  }

  /** A request was sent. */
  deposit(now: number): void {
    this.#rotate(now)
    this.#deposits[this.#bucket % BUCKETS]!++
    this.#deposited++
  }

  /** Whether one more extra attempt fits the budget now. */
  available(now: number): boolean {
    this.#rotate(now)
    return this.#withdrawn + 1 <= this.#deposited * this.#ratio + this.#reserve
  }

  /** Takes one extra attempt from the budget; false (and nothing taken) when it does not fit. */
  withdraw(now: number): boolean {
    if (!this.available(now)) return false
    this.#withdrawals[this.#bucket % BUCKETS]!++
    this.#withdrawn++
    return true
  }

  #rotate(now: number) {
    const bucket = Math.floor(now / this.#bucketMs)
    if (bucket === this.#bucket) return
    if (bucket - this.#bucket >= BUCKETS || this.#bucket === -Infinity) {
      this.#deposits.fill(0)
      this.#withdrawals.fill(0)
      this.#deposited = 0
      this.#withdrawn = 0
    } else {
      for (let b = this.#bucket + 1; b <= bucket; b++) {
        const k = b % BUCKETS
        this.#deposited -= this.#deposits[k]!
        this.#withdrawn -= this.#withdrawals[k]!
        this.#deposits[k] = 0
        this.#withdrawals[k] = 0
      }
    }
    this.#bucket = bucket
  }
}

/** The last 1,024 latencies of a client, and their 95th percentile, recomputed every 64 samples. */
export class LatencyWindow {
  readonly #samples = new Float64Array(1024)
  #count = 0
  #p95 = Number.NaN

  add(ms: number): void {
    this.#samples[this.#count % 1024] = ms
    this.#count++
    if (this.#count % 64 === 0) {
      const n = Math.min(this.#count, 1024)
      const sorted = this.#samples.slice(0, n).sort()
      this.#p95 = sorted[Math.min(n - 1, Math.ceil(0.95 * n) - 1)]!
    }
  }

  /** NaN until 64 samples were seen. */
  get p95(): number {
    return this.#p95
  }
}

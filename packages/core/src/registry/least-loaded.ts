// Least-loaded balancing, the retry budget and a latency window: pure arithmetic on numbers, no I/O and no
// timers; every function takes the time (ms, any monotonic origin) from its caller, so tests drive a fake clock.

/**
 * What the balancer knows about one endpoint: a peak-sensitive EWMA of its latency, its requests in
 * flight, and how often it was picked lately. The service client keeps one per endpoint and reports to it
 * through `LeastLoaded`.
 */
export class EndpointLoad {
  /** The latency estimate (ms) as of `stamp`; relaxes toward the set's neutral estimate as time passes. */
  ewma = 0
  stamp = 0
  /** Whether any latency was observed; until then the endpoint costs the neutral estimate. */
  observed = false
  /** Whether its last answer was slow (beyond the tie margin above its estimate). */
  lastSlow = false
  /** The start times of its requests sent and not yet answered, oldest first. */
  readonly starts: number[] = []
  /** Requests sent and not yet answered. */
  get pending(): number {
    return this.starts.length
  }
  /** Its picks, each decaying by e every `shareWindow` ms, as of `pickStamp`: its recent share. */
  picks = 0
  pickStamp = 0
  /** When it joined; its weight ramps up over the warm-up from then. `-Infinity`: no warm-up. */
  since = Number.NEGATIVE_INFINITY
  weight = 1
}

export interface LeastLoadedOptions {
  /**
   * The decay time constant (ms): an observation's weight falls by e every `decay` ms. Time-based rather
   * than per-sample, so the estimate means the same at 1 request/s and at 100,000/s. @default 200
   */
  decay?: number
  /** Over how long (ms) an instance that joins later ramps from 10% to its full weight. @default 10_000 */
  warmUp?: number
  /**
   * Over how long (ms, a time constant) picks are remembered to share equal instances by weight.
   * @default 10_000
   */
  shareWindow?: number
  /** A number in [0, 1): `Math.random` unless a test gives its own. */
  random?: () => number
}

/** A failed attempt is observed as at least this many times the neutral estimate: failing fast is no merit. */
const FAILURE_PENALTY = 5
/** The weight share a joining instance starts with. */
const WARM_START = 0.1
/**
 * Two latency estimates within this factor of each other are a tie: the difference is noise (jitter, one
 * answer in a hundred twice as slow for a GC pause or a late timer), and the endpoint that had less than its
 * weight's share lately wins. From it on the faster endpoint wins: a slow one (2x and more) loses every
 * draw. A lower factor made the noise decide again: with 1.5, answers twice as slow 1% of the time kept
 * shunning each of 5 equal instances in turn (up to 27% off an equal share in the simulation of
 * least-loaded.test.ts); an instance 1.5x slower than its siblings now keeps its share.
 */
const TIE = 2

/**
 * Power of two choices (Finagle's and Linkerd's P2C, Envoy's least-request): two distinct endpoints are
 * drawn at random; the one whose latency estimate is clearly lower (by `TIE`) wins, and on a tie the one
 * further below its weight's share of the recent picks. So the slowest endpoint of a set is never picked
 * while its estimate holds, and no endpoint gets a herd because it looked best a moment ago.
 *
 * The latency estimate is a peak EWMA: a latency above it replaces it at once (slowness is believed
 * immediately); a latency below is blended in with weight `1 - exp(-elapsed / decay)`; when no request is
 * answered it relaxes toward the neutral estimate (an EWMA of every answer of the set), so an endpoint that
 * was shunned is tried again after about `decay x ln(its ratio to the others)` and comes back if it
 * recovered, without ever looking better than the set meanwhile (no herd onto one left alone). It is
 * never below the age of the endpoint's oldest request in flight: one that just turned slow is known to be
 * slow from its unanswered requests, before the first slow answer arrives. And while a request to it is in
 * flight, it does not relax below what it was last seen at: a shunned endpoint is re-tried by one probe
 * at a time, not by the burst that its owed share would send before the probe answers.
 *
 * Why ties go by share, not by the cost alone (Finagle's `latency x (pending + 1)`): a cost is a noisy
 * estimate, and plain P2C follows the noise. With equal endpoints the one whose last answer was a little
 * slower loses every draw until its estimate decays, and one stall of its process shuns it for seconds; over
 * 10,000 requests five equal instances were spread 10-40% off an equal share. Dividing the cost by the
 * weight does not give weighted shares either: with nothing in flight the heavier one wins every draw
 * (1:2:3 became about 0:1:2). The recent picks per unit of weight (each pick decaying by e every
 * `shareWindow`) are a feedback loop on the share itself: equal endpoints get equal shares, weighted ones
 * shares in proportion to their weights, at any concurrency, and one shunned for a while is owed its share
 * back once it is fast again. The picks are counted when they are made, so a burst of picks spreads at once
 * (what the requests in flight did in Finagle's cost).
 *
 * Endpoints never observed cost the neutral estimate; one that joins after the first `update()` starts at
 * the set's recent share (owed nothing) and warms up: when it wins a pair it keeps the win only with a
 * probability that ramps from 10% to 100% over `warmUp` ms, so its share grows gradually.
 */
export class LeastLoaded<T> {
  readonly #loadOf: (item: T) => EndpointLoad
  readonly #decay: number
  readonly #warmUp: number
  readonly #shareWindow: number
  readonly #random: () => number
  #items: readonly T[] = []
  #known = new Set<EndpointLoad>()
  #first = true
  /** The neutral estimate: a plain EWMA over every answer of every endpoint (0: none yet). */
  #neutral = 0
  #neutralStamp = 0

  constructor(loadOf: (item: T) => EndpointLoad, options: LeastLoadedOptions = {}) {
    this.#loadOf = loadOf
    this.#decay = options.decay ?? 200
    this.#warmUp = options.warmUp ?? 10_000
    this.#shareWindow = options.shareWindow ?? 10_000
    this.#random = options.random ?? Math.random
  }

  get items(): readonly T[] {
    return this.#items
  }

  get size(): number {
    return this.#items.length
  }

  /**
   * Replaces the item set. Items not seen before start at the set's recent share per unit of weight (not
   * owed a backlog), and warm up from `now` (not on the first call).
   */
  update(items: readonly T[], weightOf: (item: T) => number, now: number): void {
    let perWeight = 0
    let counted = 0
    for (const load of this.#known) {
      perWeight += this.#picksAt(load, now) / load.weight
      counted++
    }
    perWeight = counted === 0 ? 0 : perWeight / counted
    const known = new Set<EndpointLoad>()
    for (const item of items) {
      const load = this.#loadOf(item)
      load.weight = weightOf(item)
      if (!this.#known.has(load)) {
        load.picks = perWeight * load.weight
        load.pickStamp = now
        if (!this.#first && !load.observed && load.since === -Infinity) load.since = now
      }
      known.add(load)
    }
    this.#first = false
    this.#known = known
    this.#items = items
  }

  /**
   * The cost of an endpoint at `now`, what draws compare (lower is better): its latency estimate in ms,
   * at least the age of its oldest request in flight.
   */
  cost(load: EndpointLoad, now: number): number {
    return this.#latency(load, now)
  }

  /**
   * Its latency estimate at `now`: the peak EWMA relaxed toward the neutral one (the neutral one until it is
   * observed, 1 before any observation at all), and at least the age of its oldest request in flight: an
   * endpoint that just turned slow is known to be slow from its unanswered requests, before the first slow
   * answer arrives.
   */
  #latency(load: EndpointLoad, now: number): number {
    const age = load.starts.length > 0 ? now - load.starts[0]! : 0
    let estimate: number
    // one probe at a time: while a request is in flight to an endpoint last seen slow, its estimate is
    // what it was last seen at, not what it relaxed to (else a burst follows the probe before it answers)
    if (load.observed)
      estimate = load.pending > 0 ? Math.max(load.ewma, this.#relaxed(load, now)) : this.#relaxed(load, now)
    else estimate = this.#neutral === 0 ? 1 : this.#neutral
    return Math.max(age, estimate)
  }

  /**
   * Two distinct items drawn at random among those `accept`s (every item when omitted), the clearly
   * faster one, or on a tie the one further below its share; `undefined` when none is accepted. With one
   * accepted, that one. `items`: a subset of the last `update()`'s (the instances of the preferred zone),
   * else all of them. Counts the pick in the returned item's share.
   */
  next(now: number, accept?: (item: T) => boolean, items: readonly T[] = this.#items): T | undefined {
    const picked = this.#choose(now, accept, items)
    if (picked !== undefined) {
      const load = this.#loadOf(picked)
      load.picks = this.#picksAt(load, now) + 1
      load.pickStamp = now
    }
    return picked
  }

  #choose(now: number, accept: ((item: T) => boolean) | undefined, items: readonly T[]): T | undefined {
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
      const [win, lose, lw] = this.#better(lb, la, now) ? [b, a, lb] : [a, b, la]
      // a warming winner keeps its win with the probability of its warmth: its share ramps up
      const warmth = this.#warmth(lw, now)
      return warmth < 1 && this.#random() >= warmth ? lose : win
    }
    // some refused (half-open breakers, a retry's tried endpoints): the best accepted, by a scan
    let best: T | undefined
    for (let k = 0; k < n; k++) {
      const item = items[(i + k) % n]!
      if (!accept(item)) continue
      if (best === undefined || this.#better(this.#loadOf(item), this.#loadOf(best), now)) best = item
    }
    return best
  }

  /** Whether `x` is better than `y`: clearly faster, or on a tie, further below its share. */
  #better(x: EndpointLoad, y: EndpointLoad, now: number): boolean {
    const cx = this.#latency(x, now)
    const cy = this.#latency(y, now)
    // the margin is the set's typical latency, not a factor of the lower estimate: a lower estimate is
    // often noise itself (a sub-millisecond answer on loopback), and a factor of noise is noise
    const margin = (TIE - 1) * (this.#neutral === 0 ? Math.min(cx, cy) : this.#neutral)
    if (cx + margin <= cy) return true
    if (cy + margin <= cx) return false
    const sx = this.#picksAt(x, now) / x.weight
    const sy = this.#picksAt(y, now) / y.weight
    return sx === sy ? cx < cy : sx < sy
  }

  #picksAt(load: EndpointLoad, now: number): number {
    const elapsed = now - load.pickStamp
    return elapsed <= 0 ? load.picks : load.picks * Math.exp(-elapsed / this.#shareWindow)
  }

  /** A request was sent to the endpoint at `now`. */
  started(load: EndpointLoad, now: number): void {
    load.starts.push(now)
  }

  /** A request sent at `started` ended without telling anything of the endpoint (its breaker refused it). */
  dropped(load: EndpointLoad, started: number): void {
    // the entry nearest `started` (given as now - ms by some callers: not always bit-exact)
    const starts = load.starts
    if (starts.length === 0) return
    // answers mostly come in the order sent: the oldest first
    if (Math.abs(starts[0]! - started) < 1e-6) {
      starts.shift()
      return
    }
    let k = 0
    for (let i = 1; i < starts.length; i++)
      if (Math.abs(starts[i]! - started) < Math.abs(starts[k]! - started)) k = i
    starts.splice(k, 1)
  }

  /**
   * Its request was abandoned after `ms` (a hedge won, the caller gave up): the endpoint was at least that
   * slow, which says something only when it is more than the estimate. Taken as an answer of `ms` would
   * pull a slow endpoint's estimate down to the hedge delay, and hedging would keep sending it requests.
   */
  abandoned(load: EndpointLoad, ms: number, now: number): void {
    if (load.observed && ms <= this.#relaxed(load, now)) this.dropped(load, now - ms)
    else this.finished(load, ms, now)
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
    const relaxed = this.#relaxed(load, now)
    // a slow answer (beyond the tie margin above the estimate) replaces the estimate when the previous
    // answer was slow too: a stall or a slow instance answers slowly again and again, while one outlier
    // alone is noise (and the busiest endpoint, answering most, would catch the most outliers and be
    // shunned for it). Any other answer is blended in by the time since the last one
    const slow = rtt >= relaxed + (TIE - 1) * this.#neutral
    if (slow && load.lastSlow) load.ewma = Math.max(rtt, relaxed)
    else {
      const w = Math.exp(-Math.max(0, now - load.stamp) / this.#decay)
      load.ewma = load.ewma * w + rtt * (1 - w)
    }
    load.lastSlow = slow
    load.stamp = now
  }

  /** Its estimate relaxed toward the neutral one by the time elapsed since its last answer. */
  #relaxed(load: EndpointLoad, now: number): number {
    const elapsed = now - load.stamp
    if (elapsed <= 0) return load.ewma
    const w = Math.exp(-elapsed / this.#decay)
    return this.#neutral + (load.ewma - this.#neutral) * w
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

  /** Whether one more extra attempt fits the budget now (at `ratio` instead of its own, when given). */
  available(now: number, ratio = this.#ratio): boolean {
    this.#rotate(now)
    return this.#withdrawn + 1 <= this.#deposited * ratio + this.#reserve
  }

  /** Takes one extra attempt from the budget; false (and nothing taken) when it does not fit. */
  withdraw(now: number, ratio = this.#ratio): boolean {
    if (!this.available(now, ratio)) return false
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

/**
 * The last 1,024 latencies of a client, and their 95th percentile: sorted when read, at most once per 64
 * new samples (a sort on the request path cost every client that tracks latency, hedging or not).
 */
export class LatencyWindow {
  readonly #samples = new Float64Array(1024)
  #count = 0
  #sortedAt = 0
  #p95 = Number.NaN

  add(ms: number): void {
    this.#samples[this.#count % 1024] = ms
    this.#count++
  }

  /** NaN until 64 samples were seen. */
  get p95(): number {
    const at = this.#count - (this.#count % 64)
    if (at === 0 || at === this.#sortedAt) return this.#p95
    this.#sortedAt = at
    const n = Math.min(this.#count, 1024)
    const sorted = this.#samples.slice(0, n).sort()
    this.#p95 = sorted[Math.min(n - 1, Math.ceil(0.95 * n) - 1)]!
    return this.#p95
  }
}

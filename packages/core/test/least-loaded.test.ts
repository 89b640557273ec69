// The least-loaded balancer and the retry budget are pure: driven here by a fake clock and a seeded random.
import test from 'ava'
import { EndpointLoad, LatencyWindow, LeastLoaded, RetryBudget } from '../src/registry/least-loaded.js'

interface Item {
  name: string
  weight: number
  load: EndpointLoad
  zone?: string
}

const item = (name: string, weight = 1, zone?: string): Item => ({
  name,
  weight,
  load: new EndpointLoad(),
  zone,
})

/** A small deterministic PRNG (mulberry32), so that every run draws the same pairs. */
function seeded(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

function balancer(items: Item[], options: { decay?: number; warmUp?: number } = {}, now = 0) {
  const lb = new LeastLoaded<Item>((i) => i.load, { random: seeded(42), ...options })
  lb.update(items, (i) => i.weight, now)
  return lb
}

/** Sends `n` sequential requests at `rate`/s from `start`; `latency(item)` is each one's answer time. */
function drive(lb: LeastLoaded<Item>, n: number, start: number, rate: number, latency: (i: Item) => number) {
  const seen: Record<string, number> = {}
  let now = start
  for (let k = 0; k < n; k++) {
    const it = lb.next(now)!
    seen[it.name] = (seen[it.name] ?? 0) + 1
    lb.started(it.load, now)
    lb.finished(it.load, latency(it), now + latency(it))
    now += 1_000 / rate
  }
  return { seen, now }
}

test('cost: the latency estimate, at least the age of the oldest request in flight; weight does not change it', (t) => {
  const [a, b] = [item('a'), item('b', 2)]
  const lb = balancer([a, b])
  lb.finished(a.load, 10, 0)
  lb.finished(b.load, 10, 0)
  t.is(lb.cost(a.load, 0), 10)
  t.is(lb.cost(b.load, 0), 10, 'a request is not faster on a heavier instance: weights act on the share')
  lb.started(a.load, 0)
  lb.started(a.load, 0)
  t.is(lb.cost(a.load, 5), 10, 'in flight for less than the estimate')
  // the oldest unanswered for 40 ms: at least that slow, before any slow answer came
  t.is(lb.cost(a.load, 40), 40)
  // requests sent since do not make it look faster (a mean age would: a burst onto a stalled instance)
  lb.started(a.load, 39)
  t.is(lb.cost(a.load, 40), 40)
  lb.finished(a.load, 1, 40)
  lb.finished(a.load, 40, 40)
  t.is(lb.cost(a.load, 41), 41, 'the oldest left')
  lb.finished(a.load, 41, 41)
  t.is(a.load.pending, 0)
})

test('peak EWMA: slow answers in a row are believed at once, one outlier and faster answers are blended in', (t) => {
  const a = item('a')
  const lb = balancer([a, item('b')], { decay: 1_000 })
  lb.finished(a.load, 10, 0)
  lb.finished(a.load, 10, 1)
  // one answer 20x slower after fast ones: an outlier, blended in by the 1 ms since the last answer
  lb.finished(a.load, 200, 2)
  t.true(a.load.ewma < 11, `one outlier: ${a.load.ewma}`)
  // a second one in a row: the instance is slow, believed at once
  lb.finished(a.load, 200, 3)
  t.is(a.load.ewma, 200, 'the peak replaces the estimate')
  // 1 ms later a 10 ms answer weighs 1 - e^(-1/1000): the estimate hardly moves
  lb.finished(a.load, 10, 4)
  t.true(a.load.ewma > 199)
  const at4 = a.load.ewma
  // without answers it relaxes toward the neutral estimate (of every answer: ~10 here), not toward 0
  const neutral = lb.cost(item('fresh').load, 1_004)
  t.true(neutral > 10 && neutral < 11, `neutral ${neutral}`)
  const before = lb.cost(a.load, 1_004)
  t.true(Math.abs(before - (neutral + (at4 - neutral) / Math.E)) < 1e-9, 'relaxes by e per decay time')
  t.true(lb.cost(a.load, 100_000) >= neutral, 'never better than the set for having been left alone')
  // a full decay time later, the same answer weighs 63%
  lb.finished(a.load, 10, 1_004)
  t.true(Math.abs(a.load.ewma - (at4 / Math.E + 10 * (1 - 1 / Math.E))) < 1e-9)
})

test('the decay is by time, not per request: the same at 1/s and at 100,000/s', (t) => {
  for (const rate of [1, 100, 100_000]) {
    const a = item('a')
    const lb = balancer([a, item('b')], { decay: 10_000 })
    lb.finished(a.load, 100, 0)
    // answers of 10 ms for 10 s at `rate`: after one decay time the estimate is ~ 100/e + 10 (1 - 1/e)
    const n = Math.max(1, Math.round(10 * rate))
    for (let k = 1; k <= n; k++) lb.finished(a.load, 10, (k * 10_000) / n)
    const expected = 100 / Math.E + 10 * (1 - 1 / Math.E)
    t.true(
      Math.abs(a.load.ewma - expected) < 1,
      `${rate}/s: ${a.load.ewma.toFixed(2)} vs ${expected.toFixed(2)}`,
    )
  }
})

interface Simulated {
  counts: Record<string, number>
  /** The largest deviation of an instance's count from its weight's share, as a fraction of that share. */
  worst: number
}

/**
 * `n` requests from `concurrency` closed-loop callers on a fake clock, each answered after `base` ms x the
 * instance's `slow` factor, with realistic noise: +-10% jitter, 1% of answers twice as slow, and stalls of
 * the instance's process (`stallsPerSecond` each, 25-75 ms, delaying whatever it has in flight).
 */
function simulate(
  weights: number[],
  options: {
    n?: number
    concurrency?: number
    base?: number
    stallsPerSecond?: number
    seed?: number
    slow?: number[]
  } = {},
): Simulated {
  const { n = 10_000, concurrency = 8, base = 5, stallsPerSecond = 0.1, seed = 1 } = options
  const noise = seeded(seed)
  const items = weights.map((w, k) => ({
    ...item(String(k), w),
    stalledUntil: 0,
    slow: options.slow?.[k] ?? 1,
  }))
  const lb = new LeastLoaded<(typeof items)[number]>((i) => i.load, { random: seeded(seed * 7 + 3) })
  lb.update(items, (i) => i.weight, 0)
  const counts: Record<string, number> = {}
  const inflight: Array<{ it: (typeof items)[number]; start: number; end: number }> = []
  let now = 0
  let sent = 0
  const send = () => {
    const it = lb.next(now)!
    counts[it.name] = (counts[it.name] ?? 0) + 1
    lb.started(it.load, now)
    const latency = base * it.slow * (0.9 + 0.2 * noise() + (noise() < 0.01 ? 1 : 0))
    inflight.push({ it, start: now, end: Math.max(now, it.stalledUntil) + latency })
    sent++
  }
  for (let k = 0; k < concurrency; k++) send()
  while (inflight.length > 0) {
    inflight.sort((x, y) => x.end - y.end)
    const done = inflight.shift()!
    for (const it of items) {
      if (noise() >= (stallsPerSecond * (done.end - now)) / 1_000) continue
      it.stalledUntil = now + 25 + 50 * noise()
      for (const f of inflight) if (f.it === it) f.end = Math.max(f.end, it.stalledUntil)
    }
    now = done.end
    lb.finished(done.it.load, done.end - done.start, now)
    if (sent < n) send()
  }
  const total = weights.reduce((sum, w) => sum + w, 0)
  const worst = Math.max(
    ...items.map((it) => Math.abs((counts[it.name] ?? 0) / ((n * it.weight) / total) - 1)),
  )
  return { counts, worst }
}

test('equal instances get equal shares: each within 10% over 10,000 requests, with jitter and stalls', (t) => {
  // plain P2C over a peak EWMA was 10-40% off here: the instance whose last answer was slower, or whose
  // process stalled, lost every draw for seconds
  for (const concurrency of [1, 8]) {
    for (const seed of [1, 2, 3]) {
      const r = simulate([1, 1, 1, 1, 1], { concurrency, seed })
      t.true(r.worst <= 0.1, `${concurrency} at a time, seed ${seed}: ${JSON.stringify(r.counts)}`)
    }
  }
})

test("weighted instances get their weight's share: 1:2:3, each within 10% over 10,000 requests", (t) => {
  // dividing the cost by the weight gave about 0:1:2 with one request at a time (the heavier one won
  // every draw), and 1:2:3 only under enough concurrency
  for (const concurrency of [1, 2, 8]) {
    for (const seed of [1, 2, 3]) {
      const r = simulate([1, 2, 3], { concurrency, seed, stallsPerSecond: 0 })
      t.true(r.worst <= 0.1, `${concurrency} at a time, seed ${seed}: ${JSON.stringify(r.counts)}`)
    }
  }
})

test('the share never outweighs latency: a 20x slower instance gets under 1% of the requests', (t) => {
  for (const seed of [1, 2, 3]) {
    const r = simulate([1, 1, 1, 1, 1], { seed, slow: [20, 1, 1, 1, 1] })
    t.true((r.counts['0'] ?? 0) < 100, `seed ${seed}: ${JSON.stringify(r.counts)}`)
  }
})

test('weights: a weight-3 instance gets about 3x the traffic of a weight-1 one at equal latency', (t) => {
  const items = [item('a', 1), item('b', 3)]
  const lb = balancer(items)
  // concurrent load: 8 requests in flight, each answered after 8 picks
  const inflight: Array<{ it: Item; at: number }> = []
  const seen: Record<string, number> = { a: 0, b: 0 }
  for (let k = 0; k < 10_000; k++) {
    const it = lb.next(k)!
    seen[it.name]!++
    lb.started(it.load, k)
    inflight.push({ it, at: k })
    if (inflight.length === 8) {
      const done = inflight.shift()!
      lb.finished(done.it.load, k - done.at, k)
    }
  }
  const ratio = seen.b! / seen.a!
  t.true(ratio > 2.4 && ratio < 3.6, JSON.stringify(seen))
})

test('a slow instance loses its traffic at once, and gets it back after it recovers', (t) => {
  const items = ['a', 'b', 'c', 'd', 'e'].map((n) => item(n))
  const lb = balancer(items, { decay: 1_000 })
  let slow = true
  const latency = (i: Item) => (i.name === 'a' && slow ? 20 : 1)
  const warm = drive(lb, 1_000, 0, 1_000, () => 1)
  const during = drive(lb, 5_000, warm.now, 1_000, latency)
  t.true(during.seen.a! < 5_000 * 0.02, `slow: ${JSON.stringify(during.seen)}`)
  slow = false
  // the slow one's estimate decays; once tried again it answers fast and is back in the rotation
  const after = drive(lb, 10_000, during.now, 1_000, latency)
  const late = drive(lb, 5_000, after.now, 1_000, latency)
  t.true(late.seen.a! > 5_000 * 0.15, `recovered: ${JSON.stringify(late.seen)}`)
})

test('warm-up: an instance joining later starts at the neutral cost and ramps up its share over warmUp', (t) => {
  const items = ['a', 'b', 'c', 'd'].map((n) => item(n))
  const lb = balancer(items, { warmUp: 10_000 })
  const noise = seeded(3)
  const latency = () => 2 + noise() * 0.4
  const first = drive(lb, 2_000, 0, 1_000, latency)
  const fresh = item('fresh')
  lb.update([...items, fresh], (i) => i.weight, first.now)
  t.false(fresh.load.observed)
  const neutral = lb.cost(fresh.load, first.now)
  t.true(neutral > 2 && neutral < 2.4, `neutral estimate ${neutral}, not 0 (a magnet) nor shunned`)
  // during its first second it gets a small share (of an equal 20%), instead of everything
  const early = drive(lb, 1_000, first.now, 1_000, latency)
  const share = (early.seen.fresh ?? 0) / 1_000
  t.true(share > 0.005 && share < 0.2 * 0.5, `warming: ${JSON.stringify(early.seen)}`)
  const later = drive(lb, 5_000, early.now + 10_000, 1_000, latency)
  t.true(Math.abs(later.seen.fresh! - 1_000) <= 150, `warm: ${JSON.stringify(later.seen)}`)
  // instances of the first update() are not warmed up
  t.is(lb.cost(items[0]!.load, 0) > 0, true)
  t.is(items[0]!.load.since, Number.NEGATIVE_INFINITY)
})

test('the zone subset is picked from first; only accepted items are picked', (t) => {
  const items = [item('a', 1, 'z1'), item('b', 1, 'z1'), item('c', 1, 'z2'), item('d', 1, 'z2')]
  const lb = balancer(items)
  const local = items.filter((i) => i.zone === 'z1')
  for (let k = 0; k < 100; k++) t.is(lb.next(k, undefined, local)!.zone, 'z1')
  const notA = (i: Item) => i.name !== 'a'
  for (let k = 0; k < 100; k++) t.is(lb.next(k, notA, local)!.name, 'b')
  t.is(
    lb.next(0, () => false, local),
    undefined,
  )
  t.is(lb.next(0, undefined, []), undefined)
})

test('a failure counts as at least 5x the neutral estimate: failing fast does not attract traffic', (t) => {
  const [a, b] = [item('a'), item('b')]
  const lb = balancer([a, b])
  lb.finished(b.load, 10, 0)
  lb.finished(a.load, 1, 0, true)
  t.is(a.load.ewma, 50)
})

test('an abandoned attempt raises an estimate below its time and never lowers one above it', (t) => {
  const [a, b] = [item('a'), item('b')]
  const lb = balancer([a, b])
  lb.finished(b.load, 5, 0)
  lb.finished(a.load, 100, 0)
  lb.finished(a.load, 100, 1)
  t.is(lb.cost(a.load, 1), 100)
  // a hedge won after 7 ms: the slow instance's request is aborted; it is not a 7 ms answer
  lb.started(a.load, 1)
  lb.abandoned(a.load, 7, 8)
  t.true(lb.cost(a.load, 8) > 90, `still slow (relaxed over 7 ms only): ${lb.cost(a.load, 8)}`)
  t.is(a.load.pending, 0)
  // a fast instance abandoned after longer than its estimate: at least that slow
  lb.started(b.load, 10)
  lb.abandoned(b.load, 40, 50)
  t.true(lb.cost(b.load, 50) >= 5, 'raised, not lowered')
  t.is(b.load.pending, 0)
})

test('retry budget: at most ratio x requests + the floor over the window, then refused', (t) => {
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, window: 10_000 })
  for (let k = 0; k < 1_000; k++) budget.deposit(k)
  let granted = 0
  for (let k = 0; k < 1_000; k++) if (budget.withdraw(1_000)) granted++
  t.is(granted, 200 + 10, '20% of 1,000 plus 1/s over 10 s')
  t.false(budget.available(1_000))
  // the window moves on: the old requests and retries leave it
  t.true(budget.available(12_000))
})

test('retry budget under a failing backend: retries stay within the budget whatever the demand', (t) => {
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 10 })
  let sent = 0
  let extra = 0
  // 60 s of 500 requests/s, every one failing and wanting 2 retries
  for (let ms = 0; ms < 60_000; ms += 2) {
    budget.deposit(ms)
    sent++
    for (let r = 0; r < 2; r++) if (budget.withdraw(ms)) extra++
  }
  // over any window: 20% of requests + 10/s; over the run, 20% + 10/s x 60 s at most
  t.true(extra <= sent * 0.2 + 10 * 60, `${extra} extra for ${sent} requests`)
  t.true(extra >= sent * 0.15, `${extra} extra for ${sent} requests: the budget is used`)
})

test('latency window: p95 of the recent samples, NaN until 64', (t) => {
  const w = new LatencyWindow()
  for (let k = 1; k <= 63; k++) w.add(k)
  t.true(Number.isNaN(w.p95))
  w.add(64)
  t.is(w.p95, 61)
  for (let k = 0; k < 2_048; k++) w.add(k % 100)
  t.is(w.p95, 94)
})

// Config and discovery under churn: 1,000 changes/s written through one kit (half `config.set()`, half
// `register()`/`deregister()`) for a few seconds, observed by a second kit (`config.watch()` and a
// `discover()` view) and, as the baseline, by a plain etcd3 watcher of the same keys in the same run.
// Counts every change seen (none may be lost) and the visibility latency, p50/p99, from the writing call
// being made to the observer's event.
// Run: npm run bench -- churn. Env: BENCH_RATE (changes/s, 1000), BENCH_SECONDS (3), BENCH_ROUNDS (2).
import { EtcdKit, type Instance, type Registration, silentLogger } from '@etcdkit/core'
import { startEtcd } from '@etcdkit/testing'
import { Etcd3 } from 'etcd3'
import { fmt, machine, median, percentile, printGrid } from './stats.js'

const RATE = Number(process.env.BENCH_RATE ?? 1_000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
/** Live registrations kept: each registration is deregistered this many discovery changes later. */
const WINDOW = 200
const MAX_IN_FLIGHT = 100

const fromEnv = process.env.ETCD_ENDPOINTS?.split(',').filter(Boolean)
const cluster = fromEnv?.length ? undefined : await startEtcd()
const endpoints: string[] = cluster?.endpoints ?? fromEnv!
console.log(`machine: ${machine()}`)
console.log(`etcd: ${cluster ? 'started by the bench (3.4, one member, fsync on)' : endpoints.join(',')}`)

/** What one observer reported: the changes it saw (once each) and how long after the writing call. */
interface Seen {
  /** change id -> when it was reported */
  ids: Map<string, number>
  latency: number[]
}

interface Round {
  /** Changes written and acknowledged by etcd, by kind (config or discovery). */
  config: number
  discovery: number
  failed: number
  elapsedMs: number
  /** Acknowledged changes an observer never reported. */
  lost: { config: number; discovery: number; etcd3: number }
  seen: { config: Seen; discovery: Seen; etcd3: Seen }
}

async function round(r: number): Promise<Round> {
  const ns = `bench-churn-${process.pid}-${r}/`
  const writer = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
  const observer = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
  const baseline = new Etcd3({ hosts: endpoints })
  /** change id (`c{n}` a config value, `+{address}` / `-{address}` a registration) -> when its call was made */
  const issuedAt = new Map<string, number>()
  /** the ids etcd acknowledged */
  const acked = new Set<string>()
  const seen = (): Seen => ({ ids: new Map(), latency: [] })
  const res: Round = {
    config: 0,
    discovery: 0,
    failed: 0,
    elapsedMs: 0,
    lost: { config: 0, discovery: 0, etcd3: 0 },
    seen: { config: seen(), discovery: seen(), etcd3: seen() },
  }
  const heard = (into: Seen, id: string) => {
    const at = issuedAt.get(id)
    if (at === undefined || into.ids.has(id)) return
    const now = performance.now()
    into.ids.set(id, now)
    into.latency.push(now - at)
  }

  // the observers: the second kit's config watch and discovery view, and etcd3's watch of the same keys
  const config = observer.config.watch('churn/')
  config.on('change', (e) => heard(res.seen.config, `c${e.value}`))
  const view = observer.discover('churn')
  let known = new Set<string>()
  view.on('change', (list: readonly Instance[]) => {
    const now = new Set(list.map((x) => x.address))
    for (const a of now) if (!known.has(a)) heard(res.seen.discovery, `+${a}`)
    for (const a of known) if (!now.has(a)) heard(res.seen.discovery, `-${a}`)
    known = now
  })
  const watcher = await baseline.watch().prefix(ns).create()
  watcher.on('put', (kv) => {
    const key = kv.key.toString()
    if (key.startsWith(`${ns}config/`)) heard(res.seen.etcd3, `c${kv.value.toString()}`)
    else if (key.startsWith(`${ns}services/`))
      heard(res.seen.etcd3, `+${key.slice(key.lastIndexOf('/') + 1)}`)
  })
  watcher.on('delete', (kv) => {
    const key = kv.key.toString()
    if (key.startsWith(`${ns}services/`)) heard(res.seen.etcd3, `-${key.slice(key.lastIndexOf('/') + 1)}`)
  })
  await Promise.all([config.ready, view.ready])
  // the writer's lease, connection and the registry's watch are set up before the clock starts
  await (await writer.register({ service: 'warmup', address: '127.0.0.1:1' })).deregister()

  // the churn: every change is one call on the writer kit, paced to RATE, at most MAX_IN_FLIGHT at once
  const live: Promise<Registration | undefined>[] = []
  const inFlight = new Set<Promise<unknown>>()
  let n = 0
  const change = () => {
    const i = n++
    let op: Promise<string | undefined>
    if (i % 2 === 0) {
      const id = `c${i}`
      issuedAt.set(id, performance.now())
      op = writer.config.set(`churn/k${(i >> 1) % 100}`, String(i)).then(() => id)
    } else if (live.length < WINDOW || (i >> 1) % 2 === 0) {
      const address = `10.7.${(i >> 8) & 255}.${i & 255}:${7000 + (i >> 16)}`
      issuedAt.set(`+${address}`, performance.now())
      const reg = writer.register({ service: 'churn', address })
      live.push(reg.catch(() => undefined))
      op = reg.then(() => `+${address}`)
    } else {
      op = live.shift()!.then(async (x) => {
        if (!x) return undefined
        issuedAt.set(`-${x.address}`, performance.now())
        await x.deregister()
        return `-${x.address}`
      })
    }
    const tracked = op.then(
      (id) => {
        if (id !== undefined) acked.add(id)
      },
      () => {
        res.failed++
      },
    )
    inFlight.add(tracked)
    void tracked.finally(() => inFlight.delete(tracked))
  }
  const start = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - start
      const due = Math.min(Math.floor((elapsed * RATE) / 1_000), RATE * SECONDS)
      while (n < due && inFlight.size < MAX_IN_FLIGHT) change()
      // on a machine that cannot keep the rate, stop at twice the planned time: the bench stays bounded
      if (n >= RATE * SECONDS || elapsed > SECONDS * 2_000) {
        clearInterval(timer)
        resolve()
      }
    }, 2)
  })
  await Promise.all(inFlight)
  res.elapsedMs = performance.now() - start
  // every change that etcd acknowledged must reach every observer: wait for them (bounded)
  const missing = (ids: Map<string, number>, of: (id: string) => boolean) =>
    [...acked].filter((id) => of(id) && !ids.has(id)).length
  const isConfig = (id: string) => id.startsWith('c')
  const isDiscovery = (id: string) => !isConfig(id)
  const count = () => ({
    config: missing(res.seen.config.ids, isConfig),
    discovery: missing(res.seen.discovery.ids, isDiscovery),
    etcd3: missing(res.seen.etcd3.ids, () => true),
  })
  const until = performance.now() + 10_000
  for (;;) {
    res.lost = count()
    if (res.lost.config + res.lost.discovery + res.lost.etcd3 === 0 || performance.now() > until) break
    await new Promise((r) => setTimeout(r, 20))
  }
  res.config = [...acked].filter(isConfig).length
  res.discovery = acked.size - res.config
  await watcher.cancel()
  baseline.close()
  await Promise.all([observer.close(), writer.close()])
  return res
}

const rounds: Round[] = []
for (let r = 0; r < ROUNDS; r++) {
  const x = await round(r)
  rounds.push(x)
  const total = x.config + x.discovery
  console.log(
    `round ${r + 1}: ${total} changes acknowledged in ${fmt(x.elapsedMs, 'ms')} (${fmt((total / x.elapsedMs) * 1_000, '/s')}), ` +
      `lost: config ${x.lost.config}, discovery ${x.lost.discovery}, etcd3 ${x.lost.etcd3}; failed writes ${x.failed}`,
  )
}
await cluster?.close()

const med = (f: (r: Round) => number) => median(rounds.map(f))
const sum = (f: (r: Round) => number) => rounds.reduce((n, r) => n + f(r), 0)
const p = (f: (r: Round) => Seen, q: number) => med((r) => percentile(f(r).latency, q))
const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`
/** Per change, how long after etcd3's watcher the kit's observer reported it (etcd's own delivery removed). */
const behind = (f: (r: Round) => Seen, q: number) =>
  med((r) => {
    const d: number[] = []
    for (const [id, at] of f(r).ids) {
      const base = r.seen.etcd3.ids.get(id)
      if (base !== undefined) d.push(at - base)
    }
    return percentile(d, q)
  })
const base50 = p((r) => r.seen.etcd3, 50)
const base99 = p((r) => r.seen.etcd3, 99)
const line = (
  what: string,
  changes: (r: Round) => number,
  lostOf: (r: Round) => number,
  s: (r: Round) => Seen,
) => [
  what,
  String(med(changes)),
  String(sum(lostOf)),
  fmt(p(s, 50), 'ms'),
  fmt(p(s, 99), 'ms'),
  x(p(s, 50), base50),
  x(p(s, 99), base99),
  s === etcd3Of ? '' : `${fmt(behind(s, 50), 'ms')} / ${fmt(behind(s, 99), 'ms')}`,
]
const etcd3Of = (r: Round) => r.seen.etcd3
printGrid(
  `churn: ${RATE} changes/s through one kit for ${SECONDS} s (median of ${ROUNDS} rounds)`,
  [
    'observer',
    'changes',
    'lost (all rounds)',
    'visible p50',
    'visible p99',
    'p50 / etcd3',
    'p99 / etcd3',
    'after etcd3, p50 / p99',
  ],
  [
    line(
      'etcd3 watch of the same keys (baseline)',
      (r) => r.config + r.discovery,
      (r) => r.lost.etcd3,
      etcd3Of,
    ),
    line(
      'kit.config.watch() events',
      (r) => r.config,
      (r) => r.lost.config,
      (r) => r.seen.config,
    ),
    line(
      'kit.discover() view: registrations and deregistrations',
      (r) => r.discovery,
      (r) => r.lost.discovery,
      (r) => r.seen.discovery,
    ),
  ],
)
console.log(`
achieved rate (median): ${fmt(
  med((r) => ((r.config + r.discovery) / r.elapsedMs) * 1_000),
  '/s',
)} of ${RATE}/s asked; failed writes: ${sum((r) => r.failed)}

How to read: one writer kit makes every change (even-numbered: config.set() of one of 100 keys to a new
value; odd: register() of a new address, or deregister() of the oldest of ${WINDOW} live ones), paced to the
rate (at most ${MAX_IN_FLIGHT} calls in flight: on a slow machine the achieved rate is lower, and is printed). A
second kit observes: a change counts as seen when its config.watch() event, or the view's instance set
gaining or losing the address, arrives; an etcd3 watcher of the same prefix in the same process is the
floor. Visibility runs from the writing call being made to that moment, so it includes the writer's own
queueing at this rate; "after etcd3" is, per change, how much later the kit's observer reported it than
etcd3's watcher did (both in this process): what the kit adds on top of etcd. "lost": changes etcd acknowledged that an observer never reported (waited for up to
10 s after the last write); a failed write (a call that timed out) is not counted as a change.`)

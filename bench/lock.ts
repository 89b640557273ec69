// Lock benchmark: etcdkit's lock beside its peers — etcd's Go `concurrency.Mutex` (etcd's own client, a Go
// program in bench/go-mutex) and the `etcd3` npm package's `Lock` in a retry loop — and beside etcd's own
// floors (put round trip, put-to-watch), all in this run, on one etcd started here (or ETCD_ENDPOINTS).
// The contended runs are repeated in rounds, the three taking turns, and medians over rounds are quoted;
// ratios against Go are taken per round (same minute, same load) and their median quoted.
// Run: npm run bench -- lock. Env: BENCH_N (latency samples, 500), BENCH_SECONDS (per contended run, 4),
// BENCH_ROUNDS (3).
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { EtcdKit, type HeldLock, silentLogger } from '@etcdkit/core'
import { buildGoProgram, startEtcd } from '@etcdkit/testing'
import { Etcd3, EtcdLockFailedError } from 'etcd3'
// the kit's keyspace and watch hub are private: core's internal accessor, for measuring them
import { kitInternals } from '../packages/core/src/kit.js'
import { etcdMetrics, fmt, machine, median, percentile, printGrid } from './stats.js'

const CONTENDERS = 8
const RUN_MS = Number(process.env.BENCH_SECONDS ?? 4) * 1_000
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const N = Number(process.env.BENCH_N ?? 500)
const WARMUP_MS = 1_000
const FIRST_ROUNDS = 20

interface Latency {
  p50: number
  p99: number
  n: number
}
const latency = (samples: readonly number[]): Latency => ({
  p50: percentile(samples, 50),
  p99: percentile(samples, 99),
  n: samples.length,
})

/** One contended run of one implementation: what every contender loop recorded. */
interface Contended {
  acquisitions: number
  /** Acquisitions including the warm-up's (the etcd call counts cover both). */
  total: number
  elapsedMs: number
  /** From the holder calling release/unlock to the next holder's acquire/lock resolving. */
  handoffs: number[]
  /** Acquire calls that failed (a try-lock's refusals, timeouts, errors). */
  failed: number
  /** Times two contenders held the lock at once (must be 0). */
  overlaps: number
  /** Fencing tokens (create revisions of the lock keys) in acquisition order; empty without tokens. */
  tokens: number[]
  perContender: number[]
}

/**
 * An acquire as the contender loop sees it: resolves once held, with its release (and fencing token, if
 * any); calls `refused` for every try refused on the way (a try-lock's retries).
 */
type Acquirer = (refused: () => void) => Promise<{ release(): Promise<void>; token?: bigint }>

/** The contender loop shared by the Node implementations: warm up, then record for `runMs`. */
async function contend(acquirers: readonly Acquirer[], warmupMs: number, runMs: number): Promise<Contended> {
  let recording = false
  let releasedAt = 0
  let holders = 0
  const res: Contended = {
    acquisitions: 0,
    total: 0,
    elapsedMs: 0,
    handoffs: [],
    failed: 0,
    overlaps: 0,
    tokens: [],
    perContender: acquirers.map(() => 0),
  }
  const refused = () => {
    if (recording) res.failed++
  }
  const loop = async (i: number, until: number) => {
    const acquire = acquirers[i]!
    while (performance.now() < until) {
      let held: Awaited<ReturnType<Acquirer>>
      try {
        held = await acquire(refused)
      } catch {
        res.failed += recording ? 1 : 0
        continue
      }
      const now = performance.now()
      res.total++
      if (++holders > 1) res.overlaps++
      if (recording) {
        if (releasedAt > 0) res.handoffs.push(now - releasedAt)
        if (held.token !== undefined) res.tokens.push(Number(held.token))
        res.acquisitions++
        res.perContender[i]!++
      }
      holders--
      releasedAt = performance.now()
      await held.release()
    }
  }
  const warmUntil = performance.now() + warmupMs
  await Promise.all(acquirers.map((_, i) => loop(i, warmUntil)))
  recording = true
  releasedAt = 0
  const start = performance.now()
  await Promise.all(acquirers.map((_, i) => loop(i, start + runMs)))
  res.elapsedMs = performance.now() - start
  return res
}

const fromEnv = process.env.ETCD_ENDPOINTS?.split(',').filter(Boolean)
const [cluster, goProgram] = await Promise.all([
  fromEnv?.length ? undefined : startEtcd(),
  buildGoProgram(fileURLToPath(new URL('go-mutex/', import.meta.url))),
])
const endpoints: string[] = cluster?.endpoints ?? fromEnv!
const ns = `bench-lock-${process.pid}-${Date.now()}/`
const newKit = () => new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
console.log(`machine: ${machine()}`)
console.log(`etcd: ${cluster ? 'started by the bench (3.4, one member, fsync on)' : endpoints.join(',')}`)
if (!goProgram.ok) console.log(`Go's concurrency.Mutex: SKIPPED (${goProgram.reason})`)

async function runGo(args: string[]): Promise<unknown> {
  if (!goProgram.ok) throw new Error(goProgram.reason)
  const { stdout } = await promisify(execFile)(goProgram.path, [args[0]!, endpoints[0]!, ...args.slice(1)], {
    maxBuffer: 64 * 2 ** 20,
    timeout: 120_000,
  })
  return JSON.parse(stdout)
}

// 1. floors: put round trip, through the same raw KV client the lock uses; put to another kit's watch
const a = newKit()
const b = newKit()
const key = kitInternals(a).keyspace.key('floor/put')
for (let i = 0; i < 100; i++) await kitInternals(a).keyspace.kv.put({ key, value: Buffer.from(String(i)) })
const puts: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = performance.now()
  await kitInternals(a).keyspace.kv.put({ key, value: Buffer.from(String(i)) })
  puts.push(performance.now() - t0)
}
const put = latency(puts)

let onEvent: (() => void) | undefined
let watchCreated!: () => void
const created = new Promise<void>((resolve) => {
  watchCreated = resolve
})
const handle = kitInternals(b).watchHub.watch(
  { key: kitInternals(b).keyspace.key('floor/watch'), startRevision: 0n },
  { onEvents: () => onEvent?.(), onReset: () => {}, onCreated: () => watchCreated() },
)
const watchKey = kitInternals(a).keyspace.key('floor/watch')
const putAndHear = async (i: number) => {
  const heard = new Promise<void>((resolve) => {
    onEvent = resolve
  })
  const t0 = performance.now()
  await kitInternals(a).keyspace.kv.put({ key: watchKey, value: Buffer.from(String(i)) })
  await heard
  return performance.now() - t0
}
await created
for (let i = 0; i < 100; i++) await putAndHear(i)
const watchSamples: number[] = []
for (let i = 0; i < N; i++) watchSamples.push(await putAndHear(i))
handle.cancel()
const putToWatch = latency(watchSamples)
/**
 * Any handoff waits for at least one write to reach another client's watch (the holder's delete), one
 * after another: no lock client on this etcd can exceed 1 s / the mean put-to-watch acquisitions/s.
 */
const putToWatchMean = watchSamples.reduce((a, b) => a + b, 0) / watchSamples.length
const chainBound = 1_000 / putToWatchMean

// 2. uncontended acquire + release: etcdkit, Go's Mutex (one session), etcd3's Lock (a lease per acquire)
const lock = a.lock('bench/uncontended')
for (let i = 0; i < 100; i++) await (await lock.acquire()).release()
const cycles: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = performance.now()
  const held = await lock.acquire()
  await held.release()
  cycles.push(performance.now() - t0)
}
const uncontended = latency(cycles)
await Promise.all([a.close(), b.close()])

const goUncontended = goProgram.ok
  ? latency(
      ((await runGo(['uncontended', `${ns}go/uncontended`, String(N)])) as { samples: number[] }).samples,
    )
  : undefined

const etcd3Clients = Array.from({ length: CONTENDERS }, () => new Etcd3({ hosts: endpoints }))
const e3 = etcd3Clients[0]!
for (let i = 0; i < 50; i++) await (await e3.lock(`${ns}etcd3/uncontended`).ttl(10).acquire()).release()
const e3Cycles: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = performance.now()
  const held = await e3.lock(`${ns}etcd3/uncontended`).ttl(10).acquire()
  await held.release()
  e3Cycles.push(performance.now() - t0)
}
const etcd3Uncontended = latency(e3Cycles)

// 3. 8 contenders, each on its own connection and lease, in rounds: etcdkit, Go, etcd3 taking turns
const kits = Array.from({ length: CONTENDERS }, newKit)
const kitAcquirers: Acquirer[] = kits.map((k) => async () => {
  const held: HeldLock = await k.lock('bench/contended').acquire({ timeout: 10_000 })
  return { release: () => held.release(), token: held.fencingToken }
})
// etcd3's Lock is a try-lock: a refused try is counted and retried at once (what a caller must write)
const etcd3Acquirers: Acquirer[] = etcd3Clients.map((c) => async (refused) => {
  for (;;) {
    try {
      return await c.lock(`${ns}etcd3/contended`).ttl(10).acquire()
    } catch (err) {
      if (!(err instanceof EtcdLockFailedError)) throw err
      refused()
    }
  }
})

/**
 * What etcd served, from its own counters: unary KV and Lease calls (keepalives excluded), and messages on
 * watch streams (watch creations and cancellations).
 */
async function etcdCalls(): Promise<{ unary: number; watch: number; fsyncMs: number; proposals: number }> {
  let unary = 0
  let watch = 0
  let fsyncMs = 0
  let proposals = 0
  for (const [name, value] of await etcdMetrics(endpoints[0]!)) {
    if (name === 'etcd_disk_wal_fsync_duration_seconds_sum') fsyncMs = value * 1_000
    if (name === 'etcd_server_proposals_committed_total') proposals = value
    if (!name.startsWith('grpc_server_started_total{') && !name.startsWith('grpc_server_msg_received_total{'))
      continue
    if (name.startsWith('grpc_server_started_total{') && name.includes('grpc_type="unary"')) {
      if (name.includes('etcdserverpb.KV"') || name.includes('etcdserverpb.Lease"')) unary += value
    } else if (name.startsWith('grpc_server_msg_received_total{') && name.includes('etcdserverpb.Watch"'))
      watch += value
  }
  return { unary, watch, fsyncMs, proposals }
}
/**
 * etcd's work per acquisition over one run (its warm-up included), from etcd's counters around it: calls,
 * watch requests, writes (raft proposals) and the time its disk spent in WAL fsyncs. etcd fsyncs one batch
 * of writes at a time, so 1,000 / fsyncMs is the most acquisitions/s its disk allows for that protocol.
 */
interface Counted extends Contended {
  calls: number
  watchMsgs: number
  fsyncMs: number
  writes: number
}
async function counted(run: () => Promise<Contended>): Promise<Counted> {
  const before = await etcdCalls()
  const res = await run()
  const after = await etcdCalls()
  return {
    ...res,
    calls: (after.unary - before.unary) / res.total,
    watchMsgs: (after.watch - before.watch) / res.total,
    fsyncMs: (after.fsyncMs - before.fsyncMs) / res.total,
    writes: (after.proposals - before.proposals) / res.total,
  }
}

const results: Record<'etcdkit' | 'go' | 'etcd3', Counted[]> = {
  etcdkit: [],
  go: [],
  etcd3: [],
}
for (let round = 0; round < ROUNDS; round++) {
  results.etcdkit.push(await counted(() => contend(kitAcquirers, round === 0 ? WARMUP_MS : 200, RUN_MS)))
  if (goProgram.ok)
    results.go.push(
      await counted(
        async () =>
          (await runGo([
            'contend',
            `${ns}go/contended`,
            String(CONTENDERS),
            String(WARMUP_MS),
            String(RUN_MS),
          ])) as Contended,
      ),
    )
  results.etcd3.push(await counted(() => contend(etcd3Acquirers, round === 0 ? WARMUP_MS : 200, RUN_MS)))
  const line = (name: string, c: Contended | undefined) =>
    c ? `${name} ${((c.acquisitions / c.elapsedMs) * 1_000).toFixed(0)}/s` : `${name} skipped`
  console.log(
    `round ${round + 1}: ${line('etcdkit', results.etcdkit[round])}, ${line('Go Mutex', results.go[round])}, ${line('etcd3 Lock', results.etcd3[round])}`,
  )
}

// 4. first waits: every round, the same kits contend for a name none of them has used (each kit's watch on
// that name is created by this wait: a watch starting at a revision etcd has passed would stall up to 100 ms)
const firstHandoffs: number[] = []
for (let round = 0; round < FIRST_ROUNDS; round++) {
  let last = 0
  await Promise.all(
    kits.map(async (k) => {
      const held = await k.lock(`bench/fresh-${round}`).acquire({ timeout: 10_000 })
      if (last > 0) firstHandoffs.push(performance.now() - last)
      last = performance.now()
      await held.release()
    }),
  )
}
const firstHandoff = latency(firstHandoffs)
await Promise.all(kits.map((k) => k.close()))
for (const c of etcd3Clients) c.close()
await cluster?.close()

// --- tables
interface Summary {
  calls: number
  watchMsgs: number
  fsyncMs: number
  writes: number
  rate: number
  p50: number
  p99: number
  failed: number
  overlaps: number
  fifo: boolean | undefined
  spread: string
}
const summarize = (c: Counted): Summary => {
  const h = latency(c.handoffs)
  let fifo: boolean | undefined
  if (c.tokens.length > 0) {
    fifo = true
    for (let i = 1; i < c.tokens.length; i++) if (c.tokens[i - 1]! >= c.tokens[i]!) fifo = false
  }
  return {
    calls: c.calls,
    watchMsgs: c.watchMsgs,
    fsyncMs: c.fsyncMs,
    writes: c.writes,
    rate: (c.acquisitions / c.elapsedMs) * 1_000,
    p50: h.p50,
    p99: h.p99,
    failed: (c.failed / c.elapsedMs) * 1_000,
    overlaps: c.overlaps,
    fifo,
    spread: `${Math.min(...c.perContender)}–${Math.max(...c.perContender)}`,
  }
}
const sums = {
  etcdkit: results.etcdkit.map(summarize),
  go: results.go.map(summarize),
  etcd3: results.etcd3.map(summarize),
}
const med = (xs: Summary[], f: (s: Summary) => number) => (xs.length ? median(xs.map(f)) : Number.NaN)
/** Median over rounds of etcdkit's figure divided by the peer's, both from the same round. */
const ratio = (peer: Summary[], f: (s: Summary) => number) =>
  peer.length ? median(sums.etcdkit.map((s, i) => f(s) / f(peer[i]!))) : Number.NaN
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : '—')
const fifoText = (xs: Summary[], queued: boolean) =>
  xs.length === 0
    ? '—'
    : !queued
      ? 'no (no queue)'
      : xs.every((s) => s.fifo === true)
        ? 'yes'
        : `NO in ${xs.filter((s) => s.fifo !== true).length} of ${xs.length} rounds`

const goRate = med(sums.go, (s) => s.rate)
const rateRatio = ratio(sums.go, (s) => s.rate)
const kitP99 = med(sums.etcdkit, (s) => s.p99)
/** The rate at which etcd's disk would do nothing but this lock's fsyncs (they are serial in etcd). */
const diskBound = med(sums.etcdkit, (s) => 1_000 / s.fsyncMs)
printGrid(
  `lock: etcdkit beside its peers, ${CONTENDERS} contenders (median of ${ROUNDS} rounds of ${RUN_MS / 1_000} s each)`,
  ['what', 'etcdkit', "Go's concurrency.Mutex", 'etcd3 Lock + retry', 'etcdkit / Go', 'etcdkit / etcd3'],
  [
    [
      'uncontended acquire + release, p50',
      fmt(uncontended.p50, 'ms'),
      fmt(goUncontended?.p50 ?? Number.NaN, 'ms'),
      fmt(etcd3Uncontended.p50, 'ms'),
      x(uncontended.p50 / (goUncontended?.p50 ?? Number.NaN)),
      x(uncontended.p50 / etcd3Uncontended.p50),
    ],
    [
      'uncontended acquire + release, p99',
      fmt(uncontended.p99, 'ms'),
      fmt(goUncontended?.p99 ?? Number.NaN, 'ms'),
      fmt(etcd3Uncontended.p99, 'ms'),
      x(uncontended.p99 / (goUncontended?.p99 ?? Number.NaN)),
      x(uncontended.p99 / etcd3Uncontended.p99),
    ],
    [
      'acquisitions/s',
      fmt(
        med(sums.etcdkit, (s) => s.rate),
        '/s',
      ),
      fmt(goRate, '/s'),
      fmt(
        med(sums.etcd3, (s) => s.rate),
        '/s',
      ),
      x(rateRatio),
      x(ratio(sums.etcd3, (s) => s.rate)),
    ],
    [
      'handoff p50',
      fmt(
        med(sums.etcdkit, (s) => s.p50),
        'ms',
      ),
      fmt(
        med(sums.go, (s) => s.p50),
        'ms',
      ),
      fmt(
        med(sums.etcd3, (s) => s.p50),
        'ms',
      ),
      x(ratio(sums.go, (s) => s.p50)),
      x(ratio(sums.etcd3, (s) => s.p50)),
    ],
    [
      'handoff p99',
      fmt(kitP99, 'ms'),
      fmt(
        med(sums.go, (s) => s.p99),
        'ms',
      ),
      fmt(
        med(sums.etcd3, (s) => s.p99),
        'ms',
      ),
      x(ratio(sums.go, (s) => s.p99)),
      x(ratio(sums.etcd3, (s) => s.p99)),
    ],
    [
      'etcd calls per acquisition (unary KV + lease)',
      fmt(med(sums.etcdkit, (s) => s.calls)),
      fmt(med(sums.go, (s) => s.calls)),
      fmt(med(sums.etcd3, (s) => s.calls)),
      x(ratio(sums.go, (s) => s.calls)),
      x(ratio(sums.etcd3, (s) => s.calls)),
    ],
    [
      'etcd writes (raft proposals) per acquisition',
      fmt(med(sums.etcdkit, (s) => s.writes)),
      fmt(med(sums.go, (s) => s.writes)),
      fmt(med(sums.etcd3, (s) => s.writes)),
      '',
      '',
    ],
    [
      "etcd's WAL fsync time per acquisition",
      fmt(
        med(sums.etcdkit, (s) => s.fsyncMs),
        'ms',
      ),
      fmt(
        med(sums.go, (s) => s.fsyncMs),
        'ms',
      ),
      fmt(
        med(sums.etcd3, (s) => s.fsyncMs),
        'ms',
      ),
      '',
      '',
    ],
    [
      "acquisitions/s etcd's disk allows (1 s / fsync time per acquisition)",
      fmt(diskBound, '/s'),
      '',
      '',
      '',
      '',
    ],
    [
      'watch requests per acquisition (creates + cancels)',
      fmt(med(sums.etcdkit, (s) => s.watchMsgs)),
      fmt(med(sums.go, (s) => s.watchMsgs)),
      fmt(med(sums.etcd3, (s) => s.watchMsgs)),
      '',
      '',
    ],
    [
      'failed tries/s',
      fmt(med(sums.etcdkit, (s) => s.failed)),
      fmt(med(sums.go, (s) => s.failed)),
      fmt(med(sums.etcd3, (s) => s.failed)),
      '',
      '',
    ],
    [
      'overlapping holders (all rounds)',
      String(sums.etcdkit.reduce((n, s) => n + s.overlaps, 0)),
      sums.go.length ? String(sums.go.reduce((n, s) => n + s.overlaps, 0)) : '—',
      String(sums.etcd3.reduce((n, s) => n + s.overlaps, 0)),
      '',
      '',
    ],
    [
      'FIFO (fencing tokens increasing)',
      fifoText(sums.etcdkit, true),
      fifoText(sums.go, true),
      fifoText(sums.etcd3, false),
      '',
      '',
    ],
    [
      'acquisitions per contender, min–max (last round)',
      sums.etcdkit.at(-1)?.spread ?? '—',
      sums.go.at(-1)?.spread ?? '—',
      sums.etcd3.at(-1)?.spread ?? '—',
      '',
      '',
    ],
  ],
)
console.log(
  `\ntargets: acquisitions/s >= 8x Go's Mutex: ${Number.isFinite(rateRatio) ? (rateRatio >= 8 ? 'met' : 'MISSED') : 'not measured (no Go)'} (${x(rateRatio)}); ` +
    `handoff p99 <= 5 ms: ${kitP99 <= 5 ? 'met' : 'MISSED'} (${fmt(kitP99, 'ms')})`,
)
const kitRate = med(sums.etcdkit, (s) => s.rate)
console.log(
  `etcd's floor: one put-to-watch per handoff (mean ${fmt(putToWatchMean, 'ms')}) allows at most ${fmt(chainBound, '/s')} for any client; ` +
    `etcdkit ran at ${((kitRate / chainBound) * 100).toFixed(0)}% of it, and at ${((kitRate / diskBound) * 100).toFixed(0)}% of the ${fmt(diskBound, '/s')} etcd's fsyncs allow; ` +
    `8x Go needs ${fmt(goRate * 8, '/s')}${Number.isFinite(goRate) && goRate * 8 > chainBound ? ", more than this etcd's floor allows" : ''}`,
)

printGrid(
  `lock: etcdkit beside etcd's floors (${N} samples per latency row)`,
  ['what', 'p50', 'p99', 'ratio', 'target'],
  [
    ['put round trip (floor)', fmt(put.p50, 'ms'), fmt(put.p99, 'ms'), '1.00x put', ''],
    [
      'put to watch event (floor)',
      fmt(putToWatch.p50, 'ms'),
      fmt(putToWatch.p99, 'ms'),
      `${x(putToWatch.p50 / put.p50)} put`,
      '',
    ],
    [
      'uncontended acquire + release',
      fmt(uncontended.p50, 'ms'),
      fmt(uncontended.p99, 'ms'),
      `${x(uncontended.p50 / put.p50)} put`,
      `<= 2.2x put: ${uncontended.p50 / put.p50 <= 2.2 ? 'met' : 'MISSED'}`,
    ],
    [
      `handoff, ${CONTENDERS} contenders (median of rounds)`,
      fmt(
        med(sums.etcdkit, (s) => s.p50),
        'ms',
      ),
      fmt(kitP99, 'ms'),
      `${x(med(sums.etcdkit, (s) => s.p50) / putToWatch.p50)} put-to-watch`,
      `p99 <= 5 ms: ${kitP99 <= 5 ? 'met' : 'MISSED'}`,
    ],
    [
      `first handoff on a fresh name, ${CONTENDERS} contenders`,
      fmt(firstHandoff.p50, 'ms'),
      fmt(firstHandoff.p99, 'ms'),
      `${x(firstHandoff.p50 / putToWatch.p50)} put-to-watch`,
      `p99 <= 20 ms (no unsynced-watcher stall): ${firstHandoff.p99 <= 20 ? 'met' : 'MISSED'}`,
    ],
  ],
)
console.log(`
How to read: each contender has its own connection and its own lease (etcdkit: a kit each; Go: a client and
session each, in one Go process; etcd3: a client each, and etcd3's Lock grants a lease per acquire). Handoff:
from the holder calling release()/Unlock() to the next holder's acquire()/Lock() returning, timed in the
process that runs the contenders. etcd3's Lock is a try-lock (one key, no queue): a refused try is retried
at once and counted as a failed try. FIFO: the fencing tokens (create revisions) of successive holders only
grow, i.e. the lock was granted in queue order. etcd calls: etcd's own counters (grpc_server_started_total,
grpc_server_msg_received_total) around each run, warm-up included, divided by its acquisitions: what a
handoff costs etcd whatever the machine's load. Ratios "etcdkit / peer" are per round, median over rounds; for
latencies lower is better, for acquisitions/s higher is better.`)

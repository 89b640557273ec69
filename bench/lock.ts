// Lock benchmark: etcdkit's lock against etcd's own floors (put round trip, put-to-watch), all measured in
// this run, on an etcd started here (or ETCD_ENDPOINTS). Run: npm run bench -- lock
import { performance } from 'node:perf_hooks'
import { EtcdKit, type HeldLock, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, startEtcd } from '@etcdkit/testing'
import { percentile } from './stats.js'

const CONTENDERS = 8
const CONTENDED_MS = Number(process.env.BENCH_SECONDS ?? 10) * 1_000
const N = Number(process.env.BENCH_N ?? 2_000)
const FIRST_ROUNDS = 40

function stats(samples: number[]) {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99), n: samples.length }
}
const ms = (v: number) => `${v.toFixed(2)} ms`

const cluster: EtcdCluster | undefined = process.env.ETCD_ENDPOINTS ? undefined : await startEtcd()
const endpoints = cluster?.endpoints ?? process.env.ETCD_ENDPOINTS?.split(',') ?? []
const ns = `bench-lock-${process.pid}-${Date.now()}/`
const newKit = () => new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })

// 1. put round trip, through the same raw KV client the lock uses
const a = newKit()
const b = newKit()
const key = a.keyspace.key('floor/put')
for (let i = 0; i < 200; i++) await a.keyspace.kv.put({ key, value: Buffer.from(String(i)) })
const puts: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = performance.now()
  await a.keyspace.kv.put({ key, value: Buffer.from(String(i)) })
  puts.push(performance.now() - t0)
}
const put = stats(puts)

// 2. put to watch event, on another kit's watch stream (the way a lock waiter hears of a release)
let onEvent: (() => void) | undefined
const handle = b.watchHub.watch(
  { key: b.keyspace.key('floor/watch'), startRevision: 0n },
  { onEvents: () => onEvent?.(), onReset: () => {} },
)
const watchKey = a.keyspace.key('floor/watch')
const putAndHear = async (i: number) => {
  const heard = new Promise<void>((resolve) => {
    onEvent = resolve
  })
  const t0 = performance.now()
  await a.keyspace.kv.put({ key: watchKey, value: Buffer.from(String(i)) })
  await heard
  return performance.now() - t0
}
await new Promise((r) => setTimeout(r, 200)) // the watch is created
for (let i = 0; i < 200; i++) await putAndHear(i)
const watchSamples: number[] = []
for (let i = 0; i < N; i++) watchSamples.push(await putAndHear(i))
handle.cancel()
const putToWatch = stats(watchSamples)

// 3. uncontended acquire + release
const lock = a.lock('bench/uncontended')
for (let i = 0; i < 200; i++) await (await lock.acquire()).release()
const cycles: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = performance.now()
  const held = await lock.acquire()
  await held.release()
  cycles.push(performance.now() - t0)
}
const uncontended = stats(cycles)
await Promise.all([a.close(), b.close()])

// 4. contenders, each on its own kit (own lease, own watch stream), acquiring in a loop for CONTENDED_MS
const kits = Array.from({ length: CONTENDERS }, newKit)
const name = 'bench/contended'
let releasedAt = 0
let holders = 0
let overlaps = 0
let failed = 0
const handoffs: number[] = []
const tokens: bigint[] = []
const contend = async (k: EtcdKit, until: number, record: boolean) => {
  while (performance.now() < until) {
    let held: HeldLock
    try {
      held = await k.lock(name).acquire({ timeout: 10_000 })
    } catch {
      failed++
      continue
    }
    const now = performance.now()
    if (++holders > 1) overlaps++
    if (record && releasedAt > 0) handoffs.push(now - releasedAt)
    if (record) tokens.push(held.fencingToken)
    holders--
    releasedAt = performance.now()
    await held.release()
  }
}
await Promise.all(kits.map((k) => contend(k, performance.now() + 1_000, false))) // warm up: watches created
releasedAt = 0
const start = performance.now()
await Promise.all(kits.map((k) => contend(k, start + CONTENDED_MS, true)))
const elapsed = performance.now() - start

// 5. first waits: every round, the same kits contend for a name none of them has used (each kit's watch on
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
const firstHandoff = stats(firstHandoffs)
await Promise.all(kits.map((k) => k.close()))
await cluster?.close()

const rate = (tokens.length / elapsed) * 1_000
const handoff = stats(handoffs)
let fifo = true
for (let i = 1; i < tokens.length; i++) if (tokens[i - 1]! >= tokens[i]!) fifo = false

const rows: Array<[string, string, string, string, string]> = [
  ['put round trip (floor)', ms(put.p50), ms(put.p99), '1.00x put', '—'],
  [
    'put to watch event (floor)',
    ms(putToWatch.p50),
    ms(putToWatch.p99),
    `${(putToWatch.p50 / put.p50).toFixed(2)}x put`,
    '—',
  ],
  [
    'uncontended acquire + release',
    ms(uncontended.p50),
    ms(uncontended.p99),
    `${(uncontended.p50 / put.p50).toFixed(2)}x put`,
    `<= 2.2x put: ${uncontended.p50 / put.p50 <= 2.2 ? 'met' : 'MISSED'}`,
  ],
  [
    `handoff, ${CONTENDERS} contenders`,
    ms(handoff.p50),
    ms(handoff.p99),
    `${(handoff.p50 / putToWatch.p50).toFixed(2)}x put-to-watch`,
    `p99 <= 10 ms: ${handoff.p99 <= 10 ? 'met' : 'MISSED'}`,
  ],
  [
    `first handoff on a fresh name, ${CONTENDERS} contenders`,
    ms(firstHandoff.p50),
    ms(firstHandoff.p99),
    `${(firstHandoff.p50 / putToWatch.p50).toFixed(2)}x put-to-watch`,
    `p99 <= 20 ms (no unsynced-watcher stall): ${firstHandoff.p99 <= 20 ? 'met' : 'MISSED'}`,
  ],
  [
    `acquisitions/s, ${CONTENDERS} contenders`,
    `${rate.toFixed(0)}/s`,
    '',
    `1 per ${(1_000 / rate / putToWatch.p50).toFixed(2)}x put-to-watch`,
    `>= 400/s: ${rate >= 400 ? 'met' : 'MISSED'}`,
  ],
]
console.log(
  `etcd ${cluster ? 'started by the bench' : endpoints.join(',')}; ${N} samples per latency row; contended run ${elapsed.toFixed(0)} ms`,
)
console.log('')
console.log('| what | p50 | p99 | ratio | target |')
console.log('| --- | --- | --- | --- | --- |')
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
console.log('')
console.log(
  'put: sequential raw KV puts of one key; put to watch: a put by one kit until a second kit hears it on its watch stream;',
)
console.log(
  `uncontended: one kit, acquire() + release() in a loop; contended: ${CONTENDERS} kits (own lease, own watch stream) in this process acquiring in a loop,`,
)
console.log(
  "handoff: from the holder calling release() to the next holder's acquire() resolving. Ratios compare p50s.",
)
console.log(
  `first handoff: ${FIRST_ROUNDS} rounds of the ${CONTENDERS} kits contending once for a name new to all of them (${firstHandoffs.length} handoffs).`,
)
console.log(
  `contended: ${tokens.length} acquisitions, ${failed} failed tries, ${overlaps} overlapping holders, fencing tokens ${fifo ? 'strictly increasing (FIFO by create revision)' : 'NOT increasing'}`,
)

// Scale: how discovery's cost grows with the registry. At 1k, 10k and 100k instances over 10, 100 and 1,000
// services, registered from several kits (each its own lease), one fresh kit discovers every service:
// time to ready, heap per instance, how soon a registration or deregistration shows in its views (p50,
// p99), and what etcd holds for it (leases, watch streams, watchers, keepalive streams, from etcd's own
// /metrics). Ratios are against the smallest size measured in the same run, and time to ready against a
// plain etcd3 client reading the same keys in the same run (etcd's own read time, with no decoding).
// Run: npm run bench -- scale. Env: BENCH_SCALE_SIZES (e.g. "1000,10000"), BENCH_ROUNDS (change samples
// per size, 200), BENCH_READS (fresh-kit reads per size, 3).
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { type Discovery, EtcdKit, type Instance, type Logger, silentLogger } from '@etcdkit/core'
import { startEtcd } from '@etcdkit/testing'
import { Etcd3 } from 'etcd3'
// the kit's keyspace and watch hub are private: core's internal accessor, for measuring them
import { kitInternals } from '../packages/core/src/kit.js'
import { type EtcdLoad, etcdLoad, fmt, machine, median, percentile, printGrid } from './stats.js'

const SIZES = (process.env.BENCH_SCALE_SIZES ?? '1000,10000,100000').split(',').map(Number)
const SAMPLES = Number(process.env.BENCH_ROUNDS ?? 200)
const READS = Number(process.env.BENCH_READS ?? 3)
/** The 100k reads take seconds each on a loaded machine: two of them, to keep `npm run bench` in 5 minutes. */
const readsAt = (instances: number) => (instances >= 100_000 ? Math.min(READS, 2) : READS)
/** Kits that hold the registrations, each on its own lease (the registry of a fleet of processes). */
const WRITERS = 10
/** etcd refuses a txn of more than 128 operations (--max-txn-ops) or 1.5 MiB (--max-request-bytes). */
const TXN_OPS = 128
const TXNS_IN_FLIGHT = 16
/**
 * A fresh kit not ready after this long is given up on (the size's other rows are then not measured): on
 * an overloaded machine its reads time out and are retried, and waiting it out would take minutes.
 */
const GIVE_UP_MS = Number(process.env.BENCH_GIVE_UP_MS ?? 45_000)

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const heapUsed = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const fromEnv = process.env.ETCD_ENDPOINTS?.split(',').filter(Boolean)
const cluster = fromEnv?.length ? undefined : await startEtcd()
const endpoints: string[] = cluster?.endpoints ?? fromEnv!
console.log(`machine: ${machine()}`)
console.log(`etcd: ${cluster ? 'started by the bench (3.4, one member, fsync on)' : endpoints.join(',')}`)
const root = `bench-scale-${process.pid}-${Date.now()}/`
const delta = (after: EtcdLoad, before: EtcdLoad): EtcdLoad => ({
  leases: after.leases - before.leases,
  watchStreams: after.watchStreams - before.watchStreams,
  watchers: after.watchers - before.watchers,
  keepAliveStreams: after.keepAliveStreams - before.keepAliveStreams,
})

/**
 * etcd's gauges once they stop moving (two reads 200 ms apart agree, at most 10 s): watches are created and
 * cancelled asynchronously, after the calls that asked for them have returned.
 */
async function settledLoad(): Promise<EtcdLoad> {
  let last = await etcdLoad(endpoints[0]!)
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200))
    const now = await etcdLoad(endpoints[0]!)
    if (JSON.stringify(now) === JSON.stringify(last)) return now
    last = now
  }
  return last
}

/** A fresh kit was not ready within GIVE_UP_MS. */
class GaveUp extends Error {}

interface SizeResult {
  /** Set when a fresh kit was given up on: the rows after time to ready are not measured. */
  gaveUp?: boolean
  /** Reads of a service that failed (a call deadline on a loaded machine) and were retried, over all reads. */
  retried: number
  instances: number
  services: number
  writeMs: number
  readyMs: number[]
  /** The floor, before each fresh kit: a fresh plain etcd3 client reading every service's prefix (txns of 64). */
  plainMs: number[]
  heapPerInstance: number
  change: number[]
  /** The same changes at a plain etcd3 watcher of the registry prefix, in this process. */
  changeFloor: number[]
  writers: EtcdLoad
  reader: EtcdLoad
}

/** Resolves when `pred` holds for `view`, checked on each of its changes. */
const seen = (view: Discovery, pred: (list: readonly Instance[]) => boolean) =>
  new Promise<void>((resolve) => {
    const check = (list: readonly Instance[]) => {
      if (!pred(list)) return
      view.off('change', check)
      resolve()
    }
    view.on('change', check)
  })

/**
 * The floor of time to ready: the same reads through a plain etcd3 client (a fresh one, its connection
 * included), the answers left undecoded, sent the quickest way etcd allows: every service's prefix as one
 * range in read-only txns of 64, 16 txns in flight (one read per prefix costs etcd and the client about
 * twice as much at 100k).
 */
async function plainReads(ns: string, names: readonly string[]): Promise<{ ms: number; kvs: number }> {
  const client = new Etcd3({ hosts: endpoints })
  try {
    const t0 = performance.now()
    let kvs = 0
    let next = 0
    // the range of a prefix ending in '/' ends where '/' + 1 ('0') begins
    const batch = (n: string) => ({
      request_range: {
        key: Buffer.from(`${ns}services/${n}/`),
        range_end: Buffer.from(`${ns}services/${n}0`),
      },
    })
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < names.length) {
          const part = names.slice(next, next + 64)
          next += 64
          const res = await client.kv.txn({ compare: [], success: part.map(batch), failure: [] })
          for (const r of res.responses) kvs += r.response_range.kvs.length
        }
      }),
    )
    return { ms: performance.now() - t0, kvs }
  } finally {
    client.close()
  }
}

async function measure(instances: number, services: number): Promise<SizeResult> {
  const ns = `${root}${instances}/`
  const kit = () => new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
  const before = await settledLoad()
  // a long TTL: on a loaded machine a bulk write can delay keepalive answers past a short one
  const writers = Array.from(
    { length: WRITERS },
    () => new EtcdKit({ endpoints, namespace: ns, logger: silentLogger, ttl: 60 }),
  )
  const leases = await Promise.all(writers.map((w) => w.session.leaseReady()))
  const perService = instances / services

  // the bulk: registry keys in the registry format, each on its writer's session lease, in txns
  const tWrite = performance.now()
  const puts = Array.from({ length: instances }, (_, i) => {
    const s = i % services
    const n = Math.floor(i / services)
    const address = `10.${s >> 8}.${s & 255}.${n % 250}:${8000 + Math.floor(n / 250)}`
    const value = JSON.stringify({ Op: 0, Addr: address, Metadata: { version: '1.0.0', zone: `z${n % 3}` } })
    return { w: i % WRITERS, key: `services/svc${s}/${address}`, value }
  })
  let next = 0
  await Promise.all(
    Array.from({ length: TXNS_IN_FLIGHT }, async () => {
      while (next < puts.length) {
        const batch = puts.slice(next, next + TXN_OPS)
        next += TXN_OPS
        const w = batch[0]!.w
        await kitInternals(writers[w]!).keyspace.kv.txn({
          success: batch.map((p) => ({
            request_put: {
              key: kitInternals(writers[w]!).keyspace.key(p.key),
              value: Buffer.from(p.value),
              lease: leases[w]!.id,
            },
          })),
        })
      }
    }),
  )
  const writeMs = performance.now() - tWrite
  // the bench's own 100k pending puts must not weigh on the reader's garbage collections below
  puts.length = 0
  const written = await kitInternals(writers[0]!).keyspace.kv.range({
    ...kitInternals(writers[0]!).keyspace.range('services/'),
    count_only: true,
  })
  const states = writers.map((w) => w.session.state)
  if (Number(written.count) !== instances || states.some((s) => s !== 'alive'))
    throw new Error(
      `${written.count} of ${instances} registrations in etcd after the bulk write; writer sessions: ${states.join(' ')}`,
    )
  // (a txn batch holds puts of several writers' instances; each key is on the lease of the writer in its
  // batch's first entry: which writer holds a key does not matter to a reader)
  const writersLoad = delta(await settledLoad(), before)
  const names = Array.from({ length: services }, (_, s) => `svc${s}`)

  // time to ready: a fresh kit (connection included) opens a view of every service, until all are loaded
  const readyMs: number[] = []
  const plainMs: number[] = []
  let retried = 0
  // counts the views' failed reads (logged at debug level, then retried with backoff)
  const counting: Logger = {
    ...silentLogger,
    debug: (_obj, msg) => {
      if (msg?.includes('could not read')) retried++
    },
  }
  for (let r = 0; r < readsAt(instances); r++) {
    const plain = await plainReads(ns, names)
    if (plain.kvs !== instances) throw new Error(`etcd3 read ${plain.kvs} instances, not ${instances}`)
    plainMs.push(plain.ms)
    const reader = new EtcdKit({ endpoints, namespace: ns, logger: counting })
    const t0 = performance.now()
    const views = names.map((n) => reader.discover(n))
    let timer: NodeJS.Timeout | undefined
    const ready = await Promise.race([
      Promise.all(views.map((v) => v.ready)).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), GIVE_UP_MS)
      }),
    ])
    clearTimeout(timer)
    readyMs.push(performance.now() - t0)
    if (!ready) {
      await reader.close()
      await Promise.all(writers.map((w) => w.close()))
      const loaded = views.filter((v) => v.loaded).length
      console.log(
        `${instances} instances: a fresh kit had ${loaded} of ${services} views ready after ${GIVE_UP_MS} ms (${retried} reads retried); giving up on this size`,
      )
      throw Object.assign(new GaveUp(), {
        result: { retried, instances, services, writeMs, readyMs, plainMs },
      })
    }
    const total = views.reduce((n, v) => n + v.instances.length, 0)
    if (total !== instances) throw new Error(`the reader saw ${total} instances, not ${instances}`)
    await reader.close()
  }

  // heap per instance: a reader already connected (one empty view), then every view, garbage collected
  const reader = kit()
  await reader.discover('none').ready
  const beforeReader = await settledLoad()
  const h0 = heapUsed()
  const views = names.map((n) => reader.discover(n))
  await Promise.all(views.map((v) => v.ready))
  // ready resolves inside the last answer's gRPC callbacks: measured there, that answer (6,400 key-values of
  // a batched read, about 2 MB) is still reachable and would count; measure once that call has finished
  await new Promise((resolve) => setTimeout(resolve, 100))
  const heapPerInstance = (heapUsed() - h0) / instances
  const readerLoad = delta(await settledLoad(), beforeReader)
  readerLoad.watchStreams += 1 // opened with the empty view, before the baseline: the reader's one stream
  readerLoad.watchers += 1

  // a change's visibility: a registration by a writer kit until the reader's view has it, and its
  // deregistration until the view has dropped it (a random service each time)
  // (from the call to the view's change; the floor: the same event at a plain etcd3 watcher of the
  // registry prefix in this process)
  const change: number[] = []
  const changeFloor: number[] = []
  const plain = new Etcd3({ hosts: endpoints })
  const watcher = await plain.watch().prefix(`${ns}services/`).create()
  const waiting = new Map<string, (at: number) => void>()
  const heard = (what: string) => new Promise<number>((resolve) => waiting.set(what, resolve))
  const hear = (what: string) => {
    waiting.get(what)?.(performance.now())
    waiting.delete(what)
  }
  watcher.on('put', (kv) => hear(`put ${kv.key.toString()}`))
  watcher.on('delete', (kv) => hear(`delete ${kv.key.toString()}`))
  const when = (p: Promise<void>) => p.then(() => performance.now())
  const prober = writers[0]!
  for (let i = 0; i < SAMPLES / 2 + 10; i++) {
    const s = Math.floor(Math.random() * services)
    const view = views[s]!
    const address = `10.250.${i >> 8}.${i & 255}:9000`
    const key = `${ns}services/svc${s}/${address}`
    let shown = when(seen(view, (list) => list.some((x) => x.address === address)))
    let raw = heard(`put ${key}`)
    let t0 = performance.now()
    const reg = await prober.register({ service: `svc${s}`, address })
    let [viewAt, rawAt] = await Promise.all([shown, raw])
    if (i >= 10) {
      change.push(viewAt - t0)
      changeFloor.push(rawAt - t0)
    }
    shown = when(seen(view, (list) => !list.some((x) => x.address === address)))
    raw = heard(`delete ${key}`)
    t0 = performance.now()
    await reg.deregister()
    ;[viewAt, rawAt] = await Promise.all([shown, raw])
    if (i >= 10) {
      change.push(viewAt - t0)
      changeFloor.push(rawAt - t0)
    }
  }
  await watcher.cancel()
  plain.close()
  if (views.some((v, i) => v.instances.length !== perService || v.service !== names[i]))
    throw new Error('a view lost or gained instances')
  await reader.close()
  await Promise.all(writers.map((w) => w.close()))
  return {
    retried,
    instances,
    services,
    writeMs,
    readyMs,
    plainMs,
    heapPerInstance,
    change,
    changeFloor,
    writers: writersLoad,
    reader: readerLoad,
  }
}

const results: SizeResult[] = []
const none: EtcdLoad = {
  leases: Number.NaN,
  watchStreams: Number.NaN,
  watchers: Number.NaN,
  keepAliveStreams: Number.NaN,
}
for (const instances of SIZES) {
  const services = Math.max(1, Math.round(instances / 100))
  let r: SizeResult
  try {
    r = await measure(instances, services)
  } catch (err) {
    if (!(err instanceof GaveUp)) throw err
    const partial = (
      err as GaveUp & {
        result: Pick<SizeResult, 'retried' | 'instances' | 'services' | 'writeMs' | 'readyMs' | 'plainMs'>
      }
    ).result
    r = {
      ...partial,
      gaveUp: true,
      heapPerInstance: Number.NaN,
      change: [],
      changeFloor: [],
      writers: none,
      reader: none,
    }
  }
  results.push(r)
  console.log(
    `${instances} instances of ${services} services: written in ${fmt(r.writeMs, 'ms')}, ready in ${r.readyMs.map((m) => fmt(m, 'ms')).join(', ')} (plain etcd3 reads: ${r.plainMs.map((m) => fmt(m, 'ms')).join(', ')})`,
  )
}
await cluster?.close()

const base = results[0]!
const vsBase = (v: number, b: number) => (results.length > 1 ? ` (${(v / b).toFixed(1)}x)` : '')
const cols = results.map((r) => `${r.instances / 1_000}k / ${r.services}`)
const row = (what: string, f: (r: SizeResult) => string) => [what, ...results.map(f)]
printGrid(
  `scale: one kit discovering every service (median of ${READS} fresh kits, 2 at 100k; ${SAMPLES} changes per size)`,
  ['instances / services', ...cols, 'target'],
  [
    [
      ...row('time to ready', (r) =>
        r.gaveUp
          ? `> ${fmt(GIVE_UP_MS, 'ms')} (gave up)`
          : fmt(median(r.readyMs), 'ms') + vsBase(median(r.readyMs), median(base.readyMs)),
      ),
      '100k < 1000 ms',
    ],
    [...row('plain etcd3 reads of the same keys (floor)', (r) => fmt(median(r.plainMs), 'ms')), ''],
    [
      ...row('time to ready / floor', (r) =>
        r.gaveUp ? '—' : `${(median(r.readyMs) / median(r.plainMs)).toFixed(2)}x`,
      ),
      '',
    ],
    [...row('reads retried after a failure (all fresh kits)', (r) => String(r.retried)), '0'],
    [...row('heap per instance', (r) => fmt(r.heapPerInstance, 'B')), ''],
    [
      ...row(
        'change visible, p50',
        (r) =>
          fmt(percentile(r.change, 50), 'ms') + vsBase(percentile(r.change, 50), percentile(base.change, 50)),
      ),
      '',
    ],
    [
      ...row(
        'change visible, p99',
        (r) =>
          fmt(percentile(r.change, 99), 'ms') + vsBase(percentile(r.change, 99), percentile(base.change, 99)),
      ),
      '100k < 10 ms',
    ],
    [
      ...row(
        'the same change at a plain etcd3 watcher (floor), p50 / p99',
        (r) => `${fmt(percentile(r.changeFloor, 50), 'ms')} / ${fmt(percentile(r.changeFloor, 99), 'ms')}`,
      ),
      '',
    ],
    [
      ...row(
        'change visible / floor, p50 / p99',
        (r) =>
          `${(percentile(r.change, 50) / percentile(r.changeFloor, 50)).toFixed(2)}x / ${(percentile(r.change, 99) / percentile(r.changeFloor, 99)).toFixed(2)}x`,
      ),
      '',
    ],
    [...row(`bulk write (${WRITERS} writer kits, txns of ${TXN_OPS})`, (r) => fmt(r.writeMs, 'ms')), ''],
    [
      ...row(
        'etcd: leases held by the writers',
        (r) => `${r.writers.leases} (${r.writers.leases / WRITERS} per kit)`,
      ),
      '1 per kit',
    ],
    [
      ...row(
        'etcd: keepalive streams of the writers',
        (r) => `${r.writers.keepAliveStreams / WRITERS} per kit`,
      ),
      '1 per kit',
    ],
    [...row('etcd: watch streams of the reader', (r) => String(r.reader.watchStreams)), '1'],
    [...row('etcd: watchers of the reader', (r) => String(r.reader.watchers)), '1 per service'],
    [
      ...row(
        'etcd: leases / keepalive streams of the reader',
        (r) => `${r.reader.leases} / ${r.reader.keepAliveStreams}`,
      ),
      '0 (it only reads)',
    ],
  ],
)
const top = results.at(-1)!
const readyTop = median(top.readyMs)
const p99Top = percentile(top.change, 99)
console.log(
  `\ntargets at ${top.instances} instances: ready < 1000 ms: ${readyTop < 1_000 && !top.gaveUp ? 'met' : 'MISSED'} (${fmt(readyTop, 'ms')}${top.gaveUp ? ', gave up' : ''}); ` +
    `change p99 < 10 ms: ${p99Top < 10 ? 'met' : 'MISSED'} (${fmt(p99Top, 'ms')}); ` +
    `a plain etcd3 client read the same keys in ${fmt(median(top.plainMs), 'ms')}`,
)
console.log(`
How to read: the registrations are real registry keys (\`services/{service}/{address}\`, the Go naming JSON) on
the session leases of ${WRITERS} writer kits, written in bulk with txns (registering 100k one register() at a
time takes minutes); the probe that times a change is a real register()/deregister() on a writer kit, timed
from the call to the view's change, and its floor is the same event at a plain etcd3 watcher of the registry
prefix in this process. Time to ready: a new kit, from its first discover() to every view loaded
(connection included); its floor is a fresh plain etcd3 client reading every service's prefix, in
read-only txns of 64 prefixes with 16 in flight, undecoded, just before. Heap per
instance: V8 heap after a full GC with every view loaded, minus the same kit with one empty view, divided by
the instances. The etcd rows are differences of etcd's own gauges before and after. Each view reads its own
service (100 keys at every size here): no read comes near grpc-js's 4 MiB receive limit.`)

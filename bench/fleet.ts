// Fleet benchmark: many kits, as many separate services would run them, against one 3-member etcd cluster.
// Each kit has its own lease, keepalive stream, watch stream and session record (kits in one worker process
// share that process's HTTP/2 connection to a member: grpc-js pools connections by target; etcd still sees
// one lease, one keepalive stream and one watch stream per kit). Each kit registers one instance of one of
// 20 services, discovers all 20, reads 10 config values, and joins a compressed-"minute" job on one lock name
// (try-lock, then waiting). Measured in one run: etcd's side from each member's /metrics and /proc, the
// kits' side from the workers, recovery after a member restart and a full cluster restart, and lock
// fan-out (watch events etcd sends per handoff) at 50, 100 and 300 waiting contenders.
// Run: npm run bench -- fleet. Env: FLEET_KITS (200), FLEET_WORKERS (4), FLEET_FANOUT ("50,100,300").
import { type ChildProcess, fork } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { EtcdKit, type HeldLock, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, startEtcd } from '@etcdkit/testing'
import { Etcd3 } from 'etcd3'
import { etcdMetrics, fmt, machine, percentile, printGrid } from './stats.js'

const SERVICES = 20
const CONFIG_KEYS = 10
const LOCK = 'fleet/cron'
/** Wall-clock milliseconds with sub-millisecond precision, comparable across the processes. */
const now = () => performance.timeOrigin + performance.now()

type ToWorker =
  | { type: 'start'; endpoints: string[]; ns: string; first: number; count: number }
  | { type: 'cron'; mode: 'try' | 'wait'; jobMs: number }
  | { type: 'fanout'; count: number; name: string }
  | { type: 'stats' }
  | { type: 'close' }
type FromWorker =
  | { type: 'ready'; bytesPerKit: number; startMs: number }
  | { type: 'config'; value: string; times: number[]; plain: number }
  | { type: 'seen'; address: string; times: number[] }
  | { type: 'cron'; tries: number[]; acquired: number[]; failed: number }
  | { type: 'fanout'; acquired: number[]; failed: number }
  | { type: 'stats'; delayP50: number; delayP99: number; delayMax: number; rss: number; heap: number }
  | { type: 'closed' }

// ---------------------------------------------------------------------------------------------- worker
async function worker() {
  const send = (m: FromWorker) => process.send!(m)
  const kits: EtcdKit[] = []
  const delay = monitorEventLoopDelay({ resolution: 5 })
  const byValue = new Map<string, number[]>()
  /** When this process's plain etcd3 watcher (etcd's floor, in the same process) saw each marker value. */
  const plainAt = new Map<string, number>()
  let plain: Etcd3 | undefined
  const seen = new Map<string, number[]>()
  // the bench's process is gone (it failed or was stopped): do not outlive it
  process.on('disconnect', () => process.exit(0))
  process.on('message', async (m: ToWorker) => {
    if (m.type === 'start') {
      plain = new Etcd3({ hosts: m.endpoints })
      const watcher = await plain.watch().key(`${m.ns}config/fleet/marker`).create()
      watcher.on('put', (kv) => plainAt.set(kv.value.toString(), now()))
      globalThis.gc?.()
      const before = process.memoryUsage()
      const t0 = performance.now()
      const registered: Promise<unknown>[] = []
      for (let i = 0; i < m.count; i++) {
        const n = m.first + i
        // a fleet is deployed in waves, not all at once: 10 kits at a time per worker
        if (i % 10 === 0) await Promise.all(registered.slice(-10))
        const kit = new EtcdKit({ endpoints: m.endpoints, namespace: m.ns, logger: silentLogger })
        kits.push(kit)
        const register = async (): Promise<unknown> => {
          for (;;) {
            try {
              return await kit.register({
                service: `svc-${n % SERVICES}`,
                address: `10.0.${n >> 8}.${n & 255}:80`,
              })
            } catch (err) {
              // etcd slow to grant a lease under the start's load: try again, as a service would
              if ((err as { code?: string }).code !== 'ETCDKIT_ETCD_UNAVAILABLE') throw err
            }
          }
        }
        registered.push(register())
        for (let s = 0; s < SERVICES; s++) {
          const view = kit.discover(`svc-${s}`)
          if (s !== 0) continue
          const marks = new Set<string>()
          view.on('change', (instances) => {
            for (const inst of instances) {
              if (!inst.address.startsWith('probe-')) continue
              const times = seen.get(inst.address) ?? []
              if (times.length >= kits.length) continue
              const at = now()
              // once per kit: a kit's view reports the probe on every later change too
              if (marks.has(inst.address)) continue
              marks.add(inst.address)
              times.push(at)
              seen.set(inst.address, times)
              if (times.length === kits.length) send({ type: 'seen', address: inst.address, times })
            }
          })
        }
        for (let c = 0; c < CONFIG_KEYS - 1; c++) kit.config.value(`fleet/k${c}`, { default: '' })
        const marker = kit.config.value('fleet/marker', { default: '' })
        marker.on('change', (value) => {
          const at = now()
          const times = byValue.get(value) ?? []
          times.push(at)
          byValue.set(value, times)
          if (times.length === kits.length)
            send({ type: 'config', value, times, plain: plainAt.get(value) ?? Number.NaN })
        })
      }
      await Promise.all(registered)
      await Promise.all(kits.map((k) => k.discover('svc-0').ready))
      globalThis.gc?.()
      const after = process.memoryUsage()
      delay.enable()
      send({
        type: 'ready',
        bytesPerKit: (after.rss - before.rss) / m.count,
        startMs: performance.now() - t0,
      })
    } else if (m.type === 'cron') {
      const tries: number[] = []
      const acquired: number[] = []
      let failed = 0
      await Promise.all(
        kits.map(async (kit) => {
          const lock = kit.lock(LOCK)
          const t0 = performance.now()
          try {
            let held: HeldLock | undefined
            if (m.mode === 'try') {
              held = await lock.tryAcquire()
              tries.push(performance.now() - t0)
            } else held = await lock.acquire({ timeout: 60_000 })
            if (!held) return
            acquired.push(now())
            await new Promise((r) => setTimeout(r, m.jobMs))
            await held.release()
          } catch {
            failed++
          }
        }),
      )
      send({ type: 'cron', tries, acquired, failed })
    } else if (m.type === 'fanout') {
      // contenders of their own (a kit each), so that every waiter's watch is in a kit of its own
      const own = Array.from(
        { length: m.count },
        () =>
          new EtcdKit({
            endpoints: [...kits[0]!.endpoints],
            namespace: kits[0]!.namespace,
            logger: silentLogger,
          }),
      )
      const acquired: number[] = []
      let failed = 0
      await Promise.all(
        own.map(async (kit) => {
          try {
            const held = await kit.lock(m.name).acquire({ timeout: 120_000 })
            acquired.push(now())
            await held.release()
          } catch {
            failed++
          }
        }),
      )
      await Promise.all(own.map((k) => k.close()))
      send({ type: 'fanout', acquired, failed })
    } else if (m.type === 'stats') {
      const mem = process.memoryUsage()
      send({
        type: 'stats',
        delayP50: delay.percentile(50) / 1e6,
        delayP99: delay.percentile(99) / 1e6,
        delayMax: delay.max / 1e6,
        rss: mem.rss,
        heap: mem.heapUsed,
      })
      delay.reset()
    } else if (m.type === 'close') {
      await Promise.all(kits.map((k) => k.close()))
      plain?.close()
      send({ type: 'closed' })
      process.exit(0)
    }
  })
}

// ------------------------------------------------------------------------------------------------ main
interface Worker {
  child: ChildProcess
  count: number
  next<T extends FromWorker['type']>(type: T): Promise<Extract<FromWorker, { type: T }>>
  /** Sends `message` and resolves with the worker's next message of `type`. */
  ask<T extends FromWorker['type']>(message: ToWorker, type: T): Promise<Extract<FromWorker, { type: T }>>
  on(fn: (m: FromWorker) => void): void
}

function startWorker(count: number): Worker {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, FLEET_WORKER: '1' },
    // FLEET_SOURCE=1: the kits run core's TypeScript sources (to measure a change without a build)
    // the workers load core as this process does (npm run bench: its sources, by the etcdkit-source condition)
    execArgv: [
      ...process.execArgv.filter((a) => a !== '--expose-gc'),
      '--expose-gc',
      ...(process.env.FLEET_SOURCE === '1' ? ['--conditions=etcdkit-source'] : []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const listeners: Array<(m: FromWorker) => void> = []
  child.on('message', (m: FromWorker) => {
    for (const l of [...listeners]) l(m)
  })
  const next: Worker['next'] = (type) =>
    new Promise((resolve) => {
      const l = (m: FromWorker) => {
        if (m.type !== type) return
        listeners.splice(listeners.indexOf(l), 1)
        resolve(m as never)
      }
      listeners.push(l)
    })
  return {
    child,
    count,
    on: (fn) => listeners.push(fn),
    next,
    ask: (message, type) => {
      const answer = next(type)
      child.send(message)
      return answer
    },
  }
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** How long ago (ms) a process started, from /proc (its start in clock ticks after boot). */
function processAgeMs(pid: number | undefined): number {
  if (pid === undefined) return Number.POSITIVE_INFINITY
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
    const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0])
    return (uptime - startTicks / 100) * 1_000
  } catch {
    return Number.POSITIVE_INFINITY
  }
}

/** Sums of etcd's counters over the members, and per-member gauges; a member that is down counts nothing. */
async function sample(cluster: EtcdCluster) {
  const per = await Promise.all(
    cluster.members.map((m) =>
      etcdMetrics(m.clientUrl).catch(() => undefined as Map<string, number> | undefined),
    ),
  )
  return per
}

const sum = (m: Map<string, number> | undefined, test: (name: string) => boolean) => {
  let n = 0
  if (m) for (const [k, v] of m) if (test(k)) n += v
  return n
}
const received = (m: Map<string, number> | undefined, method?: string) =>
  sum(
    m,
    (k) =>
      k.startsWith('grpc_server_msg_received_total{') && (!method || k.includes(`grpc_method="${method}"`)),
  )
/** Messages etcd received, by gRPC method. */
function receivedByMethod(m: Map<string, number> | undefined): Map<string, number> {
  const by = new Map<string, number>()
  if (m)
    for (const [k, v] of m) {
      const g = /^grpc_server_msg_received_total\{.*grpc_method="([^"]+)"/.exec(k)
      if (g) by.set(g[1]!, (by.get(g[1]!) ?? 0) + v)
    }
  return by
}
const events = (m: Map<string, number> | undefined) => sum(m, (k) => k === 'etcd_debugging_mvcc_events_total')

/** Counter deltas over the members, tolerating a member's counters starting again from 0 after a restart. */
function delta(
  a: (Map<string, number> | undefined)[],
  b: (Map<string, number> | undefined)[],
  f: typeof received,
) {
  let d = 0
  for (let i = 0; i < b.length; i++) {
    const x = f(a[i])
    const y = f(b[i])
    if (b[i] === undefined) continue
    d += y >= x && a[i] !== undefined ? y - x : y
  }
  return d
}

async function main() {
  const KITS = Number(process.env.FLEET_KITS ?? 200)
  const WORKERS = Number(process.env.FLEET_WORKERS ?? 4)
  const FANOUT = (process.env.FLEET_FANOUT ?? '50,100,300').split(',').map(Number)
  const started = performance.now()
  console.log(`machine: ${machine()}`)
  const cluster = await startEtcd({ members: 3 })
  const { endpoints } = cluster
  const ns = `bench-fleet-${process.pid}/`
  const raw = new Etcd3({ hosts: endpoints })
  const admin = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
  for (let c = 0; c < CONFIG_KEYS - 1; c++) await admin.config.set(`fleet/k${c}`, `v${c}`)
  console.log(`etcd: 3 members started by the bench; ${KITS} kits in ${WORKERS} worker processes`)

  // --- start the fleet
  const workers: Worker[] = []
  for (let w = 0; w < WORKERS; w++)
    workers.push(startWorker(Math.floor(KITS / WORKERS) + (w < KITS % WORKERS ? 1 : 0)))
  const t0 = performance.now()
  let first = 0
  for (const w of workers) {
    w.child.send({ type: 'start', endpoints, ns, first, count: w.count } satisfies ToWorker)
    first += w.count
  }
  const ready = await Promise.all(workers.map((w) => w.next('ready')))
  const startMs = performance.now() - t0
  const bytesPerKit = ready.reduce((a, r) => a + r.bytesPerKit * 1, 0) / ready.length
  await waitRegistered()
  console.log(`(fleet up in ${(startMs / 1000).toFixed(1)} s)`)

  async function registeredCount() {
    return (await raw
      .getAll()
      .prefix(`${ns}services/`)
      .count()
      .catch(() => -1)) as number
  }
  async function waitRegistered(limitMs = 60_000) {
    const until = performance.now() + limitMs
    while (performance.now() < until) {
      if ((await registeredCount()) >= KITS) return true
      await new Promise((r) => setTimeout(r, 100))
    }
    return false
  }

  // --- config change reaching every kit
  let changes = 0
  async function configChange(
    timeoutMs = 30_000,
  ): Promise<{ lat: number[]; plain: number[]; missing: number }> {
    const value = `c${++changes}`
    const got = workers.map((w) => w.next('config'))
    const t = now()
    await admin.config.set('fleet/marker', value)
    const results = await Promise.race([
      Promise.all(got),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs)),
    ])
    if (!results) return { lat: [], plain: [], missing: KITS }
    return {
      lat: results.flatMap((r) => r.times.map((x) => x - t)),
      plain: results.map((r) => r.plain - t),
      missing: 0,
    }
  }
  // etcd's own fan-out floor: a plain watcher per worker-sized group is too many processes; one raw watcher
  // here sees the same put, and the spread over the kits is etcd sending the event on every stream
  const floorWatcher = await raw.watch().key(`${ns}config/fleet/marker`).create()
  let floorAt: ((t: number) => void) | undefined
  floorWatcher.on('put', () => floorAt?.(now()))

  // steady state: metrics over 10 s
  await new Promise((r) => setTimeout(r, 2_000))
  const cpu0 = cluster.members.map((m) => cpuSeconds(m.pid))
  const m0 = await sample(cluster)
  const s0 = performance.now()
  await Promise.all(workers.map((w) => w.ask({ type: 'stats' }, 'stats')))
  await new Promise((r) => setTimeout(r, 10_000))
  const m1 = await sample(cluster)
  const steadyS = (performance.now() - s0) / 1_000
  const cpu1 = cluster.members.map((m) => cpuSeconds(m.pid))
  const stats = await Promise.all(workers.map((w) => w.ask({ type: 'stats' }, 'stats')))

  const perSec = (f: typeof received) => delta(m0, m1, f) / steadyS
  const steadyRate = perSec((m) => received(m))
  const methods = new Set<string>()
  for (const m of m1)
    if (m)
      for (const k of m.keys()) {
        const g = /^grpc_server_msg_received_total\{.*grpc_method="([^"]+)"/.exec(k)
        if (g) methods.add(g[1]!)
      }

  const step = (what: string) =>
    console.log(
      `(${((performance.now() - started) / 1_000).toFixed(0)} s: ${what}; load ${os.loadavg()[0]!.toFixed(1)})`,
    )
  step('steady state measured')
  // config fan-out: 10 changes, with the floor
  const lat: number[] = []
  const floor: number[] = []
  const plainFloor: number[] = []
  for (let i = 0; i < 10; i++) {
    const f = new Promise<number>((r) => {
      floorAt = r
    })
    const t = now()
    const c = await configChange()
    floor.push((await f) - t)
    lat.push(...c.lat)
    plainFloor.push(...c.plain)
    await new Promise((r) => setTimeout(r, 200))
  }

  // one registration seen by every kit's discovery of svc-0
  const regLat: number[] = []
  for (let i = 0; i < 3; i++) {
    const address = `probe-${i}:80`
    const seen = workers.map((w) => w.next('seen'))
    const t = now()
    const reg = await admin.register({ service: 'svc-0', address })
    const res = await Promise.all(seen)
    regLat.push(...res.flatMap((r) => r.times.map((x) => x - t)))
    await reg.deregister()
  }

  step('config and registration fan-out measured')
  // the cron job: try-lock (wait: false) then waiting, 3 "minutes" each
  const cron: Record<'try' | 'wait', { winners: number[]; spread: number[]; tries: number[]; ev: number }> = {
    try: { winners: [], spread: [], tries: [], ev: 0 },
    wait: { winners: [], spread: [], tries: [], ev: 0 },
  }
  for (const mode of ['try', 'wait'] as const) {
    for (let minute = 0; minute < 3; minute++) {
      const before = await sample(cluster)
      const t = now()
      const res = await Promise.all(
        workers.map((w) => w.ask({ type: 'cron', mode, jobMs: mode === 'try' ? 200 : 1 }, 'cron')),
      )
      const after = await sample(cluster)
      const acquired = res.flatMap((r) => r.acquired).sort((a, b) => a - b)
      cron[mode].winners.push(acquired.length)
      cron[mode].spread.push((acquired.at(-1) ?? t) - t)
      cron[mode].tries.push(...res.flatMap((r) => r.tries))
      cron[mode].ev += delta(before, after, events)
      await new Promise((r) => setTimeout(r, 500))
    }
  }

  step('cron job measured')
  // lock fan-out: watch events etcd sends per handoff, at C waiting contenders (a kit each)
  const fanout: Array<{ c: number; perHandoff: number; ms: number; failed: number }> = []
  for (const c of FANOUT) {
    const name = `fleet/fanout-${c}`
    const before = await sample(cluster)
    const t = performance.now()
    const res = await Promise.all(
      workers.map((w, i) => {
        const share = Math.floor(c / WORKERS) + (i < c % WORKERS ? 1 : 0)
        w.child.send({ type: 'fanout', count: share, name } satisfies ToWorker)
        return w.next('fanout')
      }),
    )
    const ms = performance.now() - t
    const after = await sample(cluster)
    const failed = res.reduce((a, r) => a + r.failed, 0)
    step(`lock fan-out at ${c} measured`)
    fanout.push({ c, perHandoff: delta(before, after, events) / c, ms, failed })
  }

  // recovery: a member restart, then a full cluster restart
  async function recovery(label: string, restart: () => Promise<void>) {
    const rates: number[] = []
    /** The same seconds by gRPC method: which requests make a burst. */
    const byMethod: Map<string, number>[] = []
    // per member: its last sample and when; a member down is skipped, and its first sample after a
    // restart counts from 0 (its counters start again with the process)
    // messages etcd received in each second (all members); a member started again counts from 0, i.e.
    // from its process's start, which falls within the second that first sees it back
    let last = await sample(cluster)
    let lastAt = performance.now()
    let stop = false
    const sampler = (async () => {
      while (!stop) {
        await new Promise((r) => setTimeout(r, 1_000))
        const m = await sample(cluster)
        const at = performance.now()
        let count = 0
        const methods = new Map<string, number>()
        for (let i = 0; i < m.length; i++) {
          if (!m[i]) continue
          const y = received(m[i])
          const x = last[i] ? received(last[i]) : 0
          const restarted = !last[i] || y < x || processAgeMs(cluster.members[i]!.pid) < at - lastAt
          count += restarted ? y : y - x
          for (const [method, n] of receivedByMethod(m[i])) {
            const before = restarted ? 0 : (receivedByMethod(last[i]).get(method) ?? 0)
            methods.set(method, (methods.get(method) ?? 0) + n - before)
          }
        }
        rates.push((count * 1_000) / (at - lastAt))
        byMethod.push(methods)
        last = m.map((x, i) => x ?? (cluster.members[i]!.running ? last[i] : undefined))
        lastAt = at
      }
    })()
    const t = performance.now()
    await restart()
    await cluster.waitHealthy(60_000)
    const healthyMs = performance.now() - t
    const registered = await waitRegistered(60_000)
    const registeredMs = performance.now() - t
    const c = await configChange(60_000)
    const currentMs = performance.now() - t
    await new Promise((r) => setTimeout(r, 3_000))
    stop = true
    await sampler
    return {
      label,
      healthyMs,
      registeredMs: registered ? registeredMs : Number.NaN,
      currentMs: c.missing === 0 ? currentMs : Number.NaN,
      peak: Math.max(...rates),
      rates,
      byMethod,
    }
  }
  step('recovery: restarting the leader')
  const mBeforeRecovery = await sample(cluster)
  const leader = await cluster.leader()
  const rec = [
    await recovery('restart of the leader', () => leader.restart()),
    await recovery('full cluster restart', () => cluster.restart()),
  ]

  const cpu = cluster.members.map((_, i) => ((cpu1[i]! - cpu0[i]!) / steadyS) * 100)
  await Promise.all(workers.map((w) => w.ask({ type: 'close' }, 'closed')))
  await floorWatcher.cancel()
  await admin.close()
  raw.close()
  const finalMetrics = await sample(cluster)
  await cluster.close()

  // ---------------------------------------------------------------------------------------- the table
  const gauge = (m: Map<string, number> | undefined, name: string) => m?.get(name) ?? Number.NaN
  const hist = (m: (Map<string, number> | undefined)[], name: string) => {
    const s = delta(m0, m, (x) => sum(x, (k) => k === `${name}_sum`))
    const n = delta(m0, m, (x) => sum(x, (k) => k === `${name}_count`))
    return (s / n) * 1_000
  }
  printGrid(
    `etcd's side, steady (${KITS} kits, ${steadyS.toFixed(0)} s)`,
    ['member', 'watch streams', 'watchers', 'leases', 'db size', 'CPU', 'requests/s'],
    cluster.members.map((mem, i) => [
      mem.name,
      fmt(gauge(m1[i], 'etcd_debugging_mvcc_watch_stream_total')),
      fmt(gauge(m1[i], 'etcd_debugging_mvcc_watcher_total')),
      fmt(
        gauge(m1[i], 'etcd_debugging_lease_granted_total') -
          gauge(m1[i], 'etcd_debugging_lease_revoked_total') -
          (m1[i]?.get('etcd_debugging_server_lease_expired_total') ?? 0),
      ),
      `${(gauge(m1[i], 'etcd_mvcc_db_total_size_in_bytes') / 2 ** 20).toFixed(1)} MiB`,
      `${fmt(cpu[i]!)} %`,
      fmt((received(m1[i]) - received(m0[i])) / steadyS),
    ]),
  )
  printGrid(
    'requests/s by type, steady (all members)',
    ['method', 'per second', 'per kit per minute'],
    [...methods]
      .map((method) => [method, perSec((m) => received(m, method))] as const)
      .filter(([, r]) => r > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([method, r]) => [method, fmt(r), fmt((r * 60) / KITS)]),
  )
  console.log(
    `\napply (from the start of the steady window to before the restarts, writes included): backend commit mean ${fmt(hist(mBeforeRecovery, 'etcd_disk_backend_commit_duration_seconds'), 'ms')}, wal fsync mean ${fmt(hist(mBeforeRecovery, 'etcd_disk_wal_fsync_duration_seconds'), 'ms')}, apply mean ${fmt(hist(mBeforeRecovery, 'etcd_server_apply_duration_seconds'), 'ms')}`,
  )
  printGrid(
    "the kits' side",
    ['what', 'p50', 'p99', 'max', 'note'],
    [
      [
        'config change reaching every kit (ms)',
        fmt(percentile(lat, 50)),
        fmt(percentile(lat, 99)),
        fmt(Math.max(...lat)),
        `${lat.length} deliveries`,
      ],
      [
        "etcd's floor: a plain etcd3 watcher in each worker (ms)",
        fmt(percentile(plainFloor, 50)),
        fmt(percentile(plainFloor, 99)),
        fmt(Math.max(...plainFloor)),
        `${plainFloor.length} deliveries, the same puts, in the kits' processes`,
      ],
      [
        "etcd's floor: a plain etcd3 watcher in the bench's own process (ms)",
        fmt(percentile(floor, 50)),
        fmt(percentile(floor, 99)),
        fmt(Math.max(...floor)),
        `${floor.length} deliveries (a process with no kits)`,
      ],
      [
        'registration seen by every kit (ms)',
        fmt(percentile(regLat, 50)),
        fmt(percentile(regLat, 99)),
        fmt(Math.max(...regLat)),
        `${regLat.length} deliveries`,
      ],
      [
        'event-loop delay per worker (ms)',
        fmt(Math.max(...stats.map((s) => s.delayP50))),
        fmt(Math.max(...stats.map((s) => s.delayP99))),
        fmt(Math.max(...stats.map((s) => s.delayMax))),
        `${(KITS / WORKERS).toFixed(0)} kits per worker`,
      ],
      [
        'try-lock round trip (ms)',
        fmt(percentile(cron.try.tries, 50)),
        fmt(percentile(cron.try.tries, 99)),
        fmt(Math.max(...cron.try.tries)),
        `winners per minute: ${cron.try.winners.join(', ')}`,
      ],
      [
        'waiting job: first to last acquisition (ms)',
        fmt(percentile(cron.wait.spread, 50)),
        '',
        fmt(Math.max(...cron.wait.spread)),
        `${cron.wait.winners.join(', ')} acquisitions; ${fmt(cron.wait.ev / cron.wait.winners.reduce((a, b) => a + b, 0))} watch events per acquisition`,
      ],
    ],
  )
  console.log(
    `\nmemory per kit (RSS growth while the worker started its kits): ${(bytesPerKit / 2 ** 10).toFixed(0)} KiB; worker RSS ${stats.map((s) => `${(s.rss / 2 ** 20).toFixed(0)}`).join(', ')} MiB`,
  )
  printGrid(
    'lock fan-out: waiting contenders (a kit each) all acquiring once',
    ['contenders', 'watch events per handoff', 'all acquired in (ms)', 'failed'],
    fanout.map((f) => [String(f.c), fmt(f.perHandoff), fmt(f.ms), String(f.failed)]),
  )
  printGrid(
    'recovery (from the restart call)',
    [
      'what',
      'healthy (ms)',
      'all registered (ms)',
      'all current (ms)',
      'peak req/s',
      'steady req/s',
      'peak / steady',
    ],
    rec.map((r) => [
      r.label,
      fmt(r.healthyMs),
      fmt(r.registeredMs),
      fmt(r.currentMs),
      fmt(r.peak),
      fmt(steadyRate),
      `${(r.peak / steadyRate).toFixed(1)}x`,
    ]),
  )
  for (const r of rec) {
    console.log(`${r.label}: requests per second ${r.rates.map((x) => x.toFixed(0)).join(' ')}`)
    const names = [...new Set(r.byMethod.flatMap((m) => [...m.keys()]))].filter((n) =>
      r.byMethod.some((m) => (m.get(n) ?? 0) > 0),
    )
    for (const n of names) console.log(`  ${n}: ${r.byMethod.map((m) => String(m.get(n) ?? 0)).join(' ')}`)
  }
  void finalMetrics
  console.log(
    `\n(fleet bench: ${((performance.now() - started) / 1_000).toFixed(0)} s; load average now ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')})`,
  )
  process.exit(0)
}

// last: the functions above use constants declared after them
if (process.env.FLEET_WORKER === '1') await worker()
else await main()

import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { type FaultProxy, startEtcd, startProxy, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { leaseMarginMs } from '../src/etcd/session.js'
import { EtcdKit, type SessionState, silentLogger } from '../src/index.js'
import { etcd, eventually } from './helpers.js'

/** Sorted copy; the value at quantile q. */
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}

interface Margins {
  /** How long before the lease's deadline (last acknowledged keepalive's send time + TTL) the signal aborted. */
  deadline: number
  /** How long after its timer was due (deadline - margin) the signal aborted: the event loop's delay. */
  late: number
  /** How long before a contender connected directly acquired the lock the signal aborted. */
  contender: number
}

/**
 * One trial: a holder behind a proxy takes the lock, waits a random part of its TTL, then its connection is
 * silently blackholed; a contender connected directly waits for the lock. Negative margins: too late.
 */
async function blackholeTrial(endpoint: string, namespace: string, i: number, ttl: number): Promise<Margins> {
  let proxy: FaultProxy | undefined
  let holder: EtcdKit | undefined
  let contender: EtcdKit | undefined
  try {
    proxy = await startProxy(endpoint)
    holder = new EtcdKit({
      endpoints: [proxy.endpoint],
      ttl,
      namespace,
      logger: silentLogger,
      callTimeout: 1_000,
    })
    contender = new EtcdKit({ endpoints: [endpoint], ttl, namespace, logger: silentLogger })
    const name = `/trial/${i}`
    const held = await holder.lock(name).acquire()
    const lease = holder.session.lease!
    let abortedAt = Number.NaN
    let deadline = Number.NaN
    held.signal.addEventListener('abort', () => {
      abortedAt = performance.now()
      deadline = lease.deadline
    })
    // a random phase against the keepalive timer and etcd's expiry checks
    await sleep(Math.random() * ttl * 1_000 * 0.6)
    proxy.blackhole()
    // a generous timeout: how long etcd takes to free the lock does not change the margin measured
    const got = await contender.lock(name).acquire({ timeout: 20_000 })
    const acquiredAt = performance.now()
    await got.release()
    // NaN (never aborted) counts as an infinitely late signal
    if (Number.isNaN(abortedAt))
      return {
        deadline: Number.NEGATIVE_INFINITY,
        late: Number.POSITIVE_INFINITY,
        contender: Number.NEGATIVE_INFINITY,
      }
    return {
      deadline: deadline - abortedAt,
      late: abortedAt - (deadline - leaseMarginMs(ttl)),
      contender: acquiredAt - abortedAt,
    }
  } finally {
    await proxy?.close()
    await Promise.all([holder?.close(), contender?.close()])
  }
}

test.serial(
  'lock-loss signal: over 50 blackhole trials with random timer phase, it aborts before a contender acquires',
  async (t) => {
    t.timeout(120_000)
    // an etcd of its own: 20 kits taking and losing locks must not slow the shared one for other files
    await using own = await startEtcd()
    const { endpoints } = own
    const namespace = uniquePrefix('deadline')
    const trials = 50
    const parallel = 10
    const margins: Margins[] = []
    // a timer cannot fire while the event loop is busy: how late this process's timers ran
    const loopDelay = monitorEventLoopDelay({ resolution: 10 })
    loopDelay.enable()
    for (let round = 0; round < trials / parallel; round++) {
      margins.push(
        ...(await Promise.all(
          Array.from({ length: parallel }, (_, j) =>
            blackholeTrial(endpoints[0]!, namespace, round * parallel + j, 2),
          ),
        )),
      )
    }
    const describe = (xs: number[]) =>
      `min ${quantile(xs, 0).toFixed(0)} ms, median ${quantile(xs, 0.5).toFixed(0)} ms, max ${quantile(xs, 1).toFixed(0)} ms`
    loopDelay.disable()
    const maxLoopDelay = loopDelay.max / 1e6
    const toDeadline = margins.map((m) => m.deadline)
    const toContender = margins.map((m) => m.contender)
    t.log(`ttl 2, ${trials} trials; before the lease deadline: ${describe(toDeadline)}`)
    t.log(`before the contender acquired: ${describe(toContender)}`)
    t.log(
      `after the timer was due: ${describe(margins.map((m) => m.late))}; event loop delay max ${maxLoopDelay.toFixed(0)} ms`,
    )
    // the contract: by a timer due at deadline - margin, late only by as much as this process's event loop
    // was (a poll at the deadline would be late by the whole margin and more)
    const lateForTimer = margins.map((m) => m.late).filter((late) => late > maxLoopDelay + 20)
    t.deepEqual(
      lateForTimer.map(Math.round),
      [],
      `${lateForTimer.length} of ${trials} later than the event loop explains`,
    )
    // what it is for: the holder knows before anyone else can hold the lock
    const lateForContender = toContender.filter((m) => m < 0)
    t.deepEqual(
      lateForContender.map(Math.round),
      [],
      `${lateForContender.length} of ${trials} signals aborted after the contender acquired`,
    )
  },
)

test.serial(
  'a keepalive round trip longer than 2/3 of the TTL keeps the lease when etcd receives every keepalive',
  async (t) => {
    const { endpoints } = await etcd()
    await using proxy = await startProxy(endpoints[0]!)
    await using k = new EtcdKit({
      endpoints: [proxy.endpoint],
      ttl: 3,
      namespace: uniquePrefix('slow'),
      logger: silentLogger,
      callTimeout: 10_000,
    })
    await k.register({ service: 'svc', address: '127.0.0.1:1' })
    const lease = k.session.lease!
    const states: SessionState[] = []
    k.session.on('state', (s) => states.push(s))
    // up to 1.1 s each way (a 2.2 s round trip, against a 3 s TTL) in 100 ms steps: a link getting slower.
    // (A sudden jump is survived too, with less room: TTL - margin - TTL/12 - round trip = 350 ms here,
    // which a machine loaded to the point of delaying timers by as much can eat.)
    for (let ms = 100; ms <= 1_100; ms += 100) {
      proxy.latency(ms)
      await sleep(100)
    }
    const started = Date.now()
    // three TTLs of slow round trips
    while (Date.now() - started < 9_000) {
      t.false(
        lease.signal.aborted,
        `the lease signal aborted after ${Date.now() - started} ms: ${String(lease.signal.reason)}`,
      )
      if (lease.signal.aborted) break
      await sleep(100)
    }
    t.false(states.includes('lost'), states.join())
    t.is(k.session.lease?.id, lease.id)
    // and etcd agrees: the lease is alive there
    const { endpoints: direct } = await etcd()
    const out = await (await etcd()).etcdctl(['lease', 'timetolive', lease.hex])
    t.regex(out, /remaining\(\d+s\)/, `${out} (direct endpoints ${direct.join()})`)
    proxy.latency(0)
    await eventually(() => k.session.state === 'alive', 'alive once the latency is gone')
  },
)

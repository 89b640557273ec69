// kit.health(): the snapshot, readiness, and 'health' events across an etcd pause longer than the TTL.
import { type EtcdCluster, etcdctl, startEtcd, startProxy } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type HealthSnapshot, silentLogger } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('a fresh kit is ready with nothing to do; its session is not started', async (t) => {
  await using k = await kit()
  const h = k.health()
  t.true(h.ready)
  t.deepEqual(h.reasons, [])
  t.like(h.session, { state: 'connecting', started: false, lease: null })
  t.deepEqual(h.registrations, [])
  t.deepEqual(h.views, [])
  t.is(h.endpoints.length, k.endpoints.length)
  t.is(h.record.pid, process.pid)
})

test('the snapshot lists registrations, views, config values, locks held and waited for, elections led', async (t) => {
  await using k = await kit({ ttl: 5 })
  await using other = await kit({ namespace: k.namespace })
  await k.register({ service: 'orders', address: '10.0.0.7:3000' })
  const view = k.discover('orders')
  await view.ready
  const limit = k.config.value('rate-limit', { parse: Number, default: 1 })
  await limit.ready
  const held = await k.lock('jobs/a').acquire()
  const blocker = await other.lock('jobs/b').acquire()
  const waiting = k.lock('jobs/b').acquire()
  const leadership = await k.election('leader/x').campaign('me')
  await eventually(() => k.health().views.every((v) => v.current), 'views current')
  await eventually(() => k.health().locks.waiting.length === 1, 'waiting')

  const h = k.health()
  t.true(h.ready, h.reasons.join('; '))
  t.like(h.session, { state: 'alive', started: true })
  t.is(h.session.lease?.hex, k.session.lease?.hex)
  t.true(h.session.lease!.ttlLeftMs > 0 && h.session.lease!.ttlLeftMs <= 5_000)
  t.deepEqual(h.registrations, [
    {
      service: 'orders',
      address: '10.0.0.7:3000',
      key: 'services/orders/10.0.0.7:3000',
      state: 'written',
      keys: [{ dialect: 'etcd', key: 'services/orders/10.0.0.7:3000', state: 'written' }],
    },
  ])
  t.like(
    h.views.find((v) => v.kind === 'discovery'),
    { name: 'orders', loaded: true, current: true, instances: 1, staleForMs: 0 },
  )
  t.like(
    h.views.find((v) => v.kind === 'config'),
    { name: 'rate-limit', loaded: true, current: true },
  )
  t.deepEqual(
    h.locks.held.map((l) => l.name),
    ['jobs/a'],
  )
  t.like(h.locks.waiting[0], { name: 'jobs/b', state: 'waiting', waiters: 1 })
  t.deepEqual(
    h.elections.leading.map((e) => e.name),
    ['leader/x'],
  )
  t.is(h.watch.state, 'open')
  t.true(h.endpoints.some((e) => e.streams.includes('keepalive')))
  t.true(h.endpoints.some((e) => e.streams.includes('watch')))
  t.like(h.record, { service: 'orders', address: '10.0.0.7:3000' })

  await held.release()
  await blocker.release()
  await (await waiting).release()
  await leadership.resign()
  const after = k.health()
  t.deepEqual([after.locks.held, after.locks.waiting, after.elections.leading], [[], [], []])
})

test.serial(
  'not ready during an etcd pause longer than the TTL, ready after it; health events tell both',
  async (t) => {
    const own: EtcdCluster = await startEtcd()
    t.teardown(() => own.close())
    const k = new EtcdKit({ endpoints: own.endpoints, ttl: 2, logger: silentLogger })
    t.teardown(() => k.close())
    const events: HealthSnapshot[] = []
    k.on('health', (h) => events.push(h))
    await k.register({ service: 'web', address: '127.0.0.1:8080' })
    const view = k.discover('web')
    await view.ready
    await eventually(() => k.health().ready, 'ready')
    own.pause()
    let resumed = false
    t.teardown(() => {
      if (!resumed) own.resume()
    })
    await eventually(() => events.some((h) => !h.ready), 'a not-ready event', 15_000)
    await eventually(() => !['alive', 'suspect'].includes(k.health().session.state), 'the lease lost', 15_000)
    // the watch stream's watchdog finds the silent stream within about 3.5 s
    await eventually(() => k.health().views.some((v) => !v.current), 'the view stale', 15_000)
    const down = k.health()
    t.false(down.ready)
    t.true(down.reasons.some((r) => r.includes('session')))
    t.not(down.registrations[0]?.state, 'written')
    t.true(
      down.views.some((v) => !v.current),
      'the discovery view is not known current during the pause',
    )
    own.resume()
    resumed = true
    await eventually(() => k.health().ready, 'ready after the resume', 30_000)
    await eventually(() => events.at(-1)?.ready === true, 'a ready event', 5_000)
    t.like(k.health().registrations[0], { state: 'written' })
  },
)

test.serial(
  'a registration whose writes fail is failing, with the last error, until etcd answers',
  async (t) => {
    const own: EtcdCluster = await startEtcd()
    t.teardown(() => own.close())
    const k = new EtcdKit({ endpoints: own.endpoints, ttl: 10, callTimeout: 300, logger: silentLogger })
    t.teardown(() => k.close())
    await k.session.leaseReady()
    own.pause()
    let resumed = false
    t.teardown(() => {
      if (!resumed) own.resume()
    })
    const registering = k.register({ service: 'api', address: '127.0.0.1:9000', timeout: 30_000 })
    t.like(k.health().registrations[0], { service: 'api', state: 'pending' })
    await eventually(() => k.health().registrations[0]?.state === 'failing', 'failing', 10_000)
    const failing = k.health()
    t.false(failing.ready)
    t.is(typeof failing.registrations[0]?.lastError, 'string')
    t.true(failing.reasons.some((r) => r.includes('failing')))
    own.resume()
    resumed = true
    await registering
    t.like(k.health().registrations[0], { state: 'written' })
    t.is(k.health().registrations[0]?.lastError, undefined)
    t.true(k.health().ready)
  },
)

test("a registration in three dialects shows each key with its own state: one deleted behind the kit's back is pending until written again", async (t) => {
  const { endpoints } = await etcd()
  // the kit reaches etcd with 300 ms each way: it learns of the deletion late and its put takes a round
  // trip, so the state in between lasts long enough to be seen
  await using proxy = await startProxy(endpoints[0]!)
  await using k = await kit({ endpoints: [proxy.endpoint] })
  const reg = await k.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    dialects: ['etcd', 'kratos', 'go-micro'],
  })
  const keys = () => k.health().registrations[0]?.keys
  t.deepEqual(keys(), [
    { dialect: 'etcd', key: 'services/orders/10.0.0.7:3000', state: 'written' },
    { dialect: 'kratos', key: '/microservices/orders/10.0.0.7:3000', state: 'written' },
    { dialect: 'go-micro', key: '/micro/registry/orders/orders-10.0.0.7:3000', state: 'written' },
  ])
  t.deepEqual(
    keys()?.map((s) => s.key),
    [...reg.keys],
  )
  proxy.latency(300)
  await etcdctl(endpoints, ['del', `${k.namespace}${reg.keys[1]}`])
  const states = () => (keys() ?? []).map((s) => s.state).join(',')
  await eventually(
    () => states() === 'written,pending,written',
    'the deleted key pending, the others written',
    5_000,
  )
  const h = k.health()
  t.false(h.ready)
  t.true(
    h.reasons.some((r) => r.includes('/microservices/orders/10.0.0.7:3000')),
    h.reasons.join('; '),
  )
  t.false(
    h.reasons.some((r) => r.includes('(etcd)') || r.includes('(go-micro)')),
    'the keys still written are no reason',
  )
  await eventually(() => states() === 'written,written,written', 'the key written again', 5_000)
  t.true(k.health().ready)
  const got = await etcdctl(endpoints, ['get', `${k.namespace}${reg.keys[1]}`, '--print-value-only'])
  t.true(got.includes('"name":"orders"'), got)
})

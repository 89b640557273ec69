// The OpenTelemetry instruments, read through the real SDK (a MetricReader collected on demand).
import { createServer } from 'node:net'
import { metrics } from '@opentelemetry/api'
import {
  type DataPoint,
  type Histogram,
  MeterProvider,
  type MetricData,
  MetricReader,
} from '@opentelemetry/sdk-metrics'
import test from 'ava'
import { etcd, eventually, kit } from './helpers.js'

class CollectingReader extends MetricReader {
  protected async onShutdown() {}
  protected async onForceFlush() {}
}

const reader = new CollectingReader()
// before any kit exists: each new kit binds the instruments to the global provider
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))

test.after.always(async () => (await etcd()).close())

async function instrument(name: string): Promise<MetricData | undefined> {
  const { resourceMetrics } = await reader.collect()
  for (const scope of resourceMetrics.scopeMetrics)
    for (const m of scope.metrics) if (m.descriptor.name === name) return m
  return undefined
}

/** The data points of `name` whose attributes include `attrs`. */
async function points(name: string, attrs: Record<string, unknown>): Promise<DataPoint<unknown>[]> {
  const m = await instrument(name)
  if (!m) return []
  return (m.dataPoints as DataPoint<unknown>[]).filter((p) =>
    Object.entries(attrs).every(([k, v]) => p.attributes[k] === v),
  )
}

const sumOf = async (name: string, attrs: Record<string, unknown>) =>
  (await points(name, attrs)).reduce((n, p) => n + (p.value as number), 0)
const countOf = async (name: string, attrs: Record<string, unknown>) =>
  (await points(name, attrs)).reduce((n, p) => n + (p.value as Histogram).count, 0)

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('a lease loss counts in etcdkit.session.lease.losses; sessions by state and keepalive round trips', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ ttl: 3 })
  k.session.start()
  await k.session.leaseReady()
  const first = k.session.lease!
  await eventually(
    async () => (await countOf('etcdkit.session.keepalive.duration', {})) > 0,
    'a keepalive answered',
  )
  t.true((await sumOf('etcdkit.session.count', { 'etcdkit.session.state': 'alive' })) >= 1)
  const before = await sumOf('etcdkit.session.lease.losses', { 'etcdkit.lease.loss.reason': 'expired' })
  await etcdctl(['lease', 'revoke', first.hex])
  await eventually(
    async () =>
      (await sumOf('etcdkit.session.lease.losses', { 'etcdkit.lease.loss.reason': 'expired' })) ===
      before + 1,
    'the loss counted',
  )
  await eventually(() => k.session.lease !== undefined && k.session.lease !== first, 'a new lease')
})

test('a breaker opening counts in etcdkit.client.breaker.state_changes with service and endpoint', async (t) => {
  await using k = await kit()
  const port = await closedPort()
  await k.register({ service: 'ghost', address: `127.0.0.1:${port}` })
  const client = k.service('ghost', { retries: 0 })
  await client.ready
  await t.throwsAsync(client.request('/'))
  const attrs = {
    'etcdkit.service': 'ghost',
    'server.address': '127.0.0.1',
    'server.port': port,
    'etcdkit.breaker.state': 'open',
  }
  await eventually(
    async () => (await sumOf('etcdkit.client.breaker.state_changes', attrs)) === 1,
    'the opening counted',
  )
  t.is(
    await countOf('etcdkit.client.request.duration', {
      'etcdkit.service': 'ghost',
      'server.port': port,
      'etcdkit.call.outcome': 'failure',
    }),
    1,
  )
  const m = await instrument('etcdkit.client.breaker.state_changes')
  for (const p of m?.dataPoints ?? [])
    t.deepEqual(
      Object.keys(p.attributes).sort(),
      ['etcdkit.breaker.state', 'etcdkit.service', 'server.address', 'server.port'],
      'only bounded attributes',
    )
})

test('a lock wait is recorded in etcdkit.lock.wait.duration by name and outcome; holds and losses too', async (t) => {
  await using a = await kit()
  await using b = await kit({ namespace: a.namespace })
  const held = await a.lock('jobs/metrics').acquire()
  await t.throwsAsync(b.lock('jobs/metrics').acquire({ timeout: 300 }), { code: 'ETCDKIT_LOCK_TIMEOUT' })
  const waiting = b.lock('jobs/metrics').acquire()
  await eventually(async () => (await b.lock('jobs/metrics').holders()).length === 2, 'b waits')
  await new Promise((resolve) => setTimeout(resolve, 200))
  await held.release()
  const next = await waiting
  const wait = (outcome: string) =>
    points('etcdkit.lock.wait.duration', {
      'etcdkit.lock.kind': 'lock',
      'etcdkit.lock.name': 'jobs/metrics',
      'etcdkit.lock.outcome': outcome,
    })
  const timedOut = await wait('timeout')
  t.is(timedOut.length, 1)
  t.is((timedOut[0]!.value as Histogram).count, 1)
  const acquired = (await wait('acquired')).map((p) => p.value as Histogram)
  t.is(
    acquired.reduce((n, h) => n + h.count, 0),
    2,
    "a's immediate acquire and b's wait",
  )
  t.true((acquired[0]!.max ?? 0) >= 0.2, "b's wait lasted at least the 200 ms a held on")
  t.is(
    await countOf('etcdkit.lock.hold.duration', {
      'etcdkit.lock.name': 'jobs/metrics',
      'etcdkit.lock.end': 'released',
    }),
    1,
  )
  // a lost lock: its key deleted by someone else
  await b.client.delete().key(`${b.namespace}${next.key}`)
  await eventually(() => next.signal.aborted, 'lost')
  t.is(await sumOf('etcdkit.lock.losses', { 'etcdkit.lock.name': 'jobs/metrics' }), 1)
})

test('a config refusal counts in etcdkit.config.refusals by key; a new value in etcdkit.config.updates', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const limit = k.config.value('rate-limit', { parse: Number, default: 100 })
  await limit.ready
  await etcdctl(['put', `${k.namespace}config/rate-limit`, '250'])
  await eventually(() => limit.current === 250, '250 arrives')
  await etcdctl(['put', `${k.namespace}config/rate-limit`, 'lots'])
  await eventually(
    async () => (await sumOf('etcdkit.config.refusals', { 'etcdkit.config.key': 'rate-limit' })) === 1,
    'the refusal counted',
  )
  t.is(limit.current, 250)
  t.is(await sumOf('etcdkit.config.updates', { 'etcdkit.config.key': 'rate-limit' }), 1)
})

test('observable instruments report registrations by state, instances per service, locks held, lease time left', async (t) => {
  await using k = await kit({ ttl: 5 })
  await k.register({ service: 'observed', address: '127.0.0.1:7777' })
  const view = k.discover('observed')
  await view.ready
  const held = await k.lock('jobs/observed').acquire()
  await eventually(() => k.health().ready, 'ready')
  t.true((await sumOf('etcdkit.registration.count', { 'etcdkit.registration.state': 'written' })) >= 1)
  t.is(await sumOf('etcdkit.discovery.instances', { 'etcdkit.service': 'observed' }), 1)
  t.true((await sumOf('etcdkit.lock.count', { 'etcdkit.lock.state': 'held' })) >= 1)
  const left = await points('etcdkit.session.lease.time_left', {})
  t.true(left.length === 1 && (left[0]!.value as number) > 0 && (left[0]!.value as number) <= 10)
  await held.release()
})

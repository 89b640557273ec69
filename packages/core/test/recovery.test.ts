import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { etcdctl, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type Instance, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { eventually } from './helpers.js'

// Each test here stops, kills or wipes etcd: each starts its own.

const addresses = (list: readonly Instance[]) => list.map((i) => i.address).sort()

test('a registered process killed with SIGKILL disappears from other views within TTL + 1 s', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('kill')
  await using watcher = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  const view = watcher.discover('jobs')
  await view.ready
  const child = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--conditions=etcdkit-source',
      fileURLToPath(new URL('fixtures/register-child.ts', import.meta.url)),
      etcd.endpoints.join(','),
      namespace,
      'jobs',
      '127.0.0.1:4000',
      '2',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  await once(child.stdout!, 'data')
  await eventually(() => view.instances.length === 1, 'the child registered')
  const killedAt = Date.now()
  child.kill('SIGKILL')
  await eventually(() => view.instances.length === 0, 'the child gone', 5_000)
  const took = Date.now() - killedAt
  t.log(`gone ${took} ms after SIGKILL (ttl 2 s)`)
  t.true(took <= 3_000, `took ${took} ms`)
})

async function registeredWorld(endpoints: string[]) {
  const namespace = uniquePrefix('restart')
  const provider = new EtcdKit({ endpoints, namespace, ttl: 5, logger: silentLogger })
  const consumer = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  await provider.register({ service: 'orders', address: '10.0.0.1:80' })
  await provider.register({ service: 'orders', address: '10.0.0.2:80' })
  await provider.register({ service: 'users', address: '10.0.0.3:80' })
  const orders = consumer.discover('orders')
  const users = consumer.discover('users')
  await eventually(() => orders.instances.length === 2 && users.instances.length === 1, 'initial views')
  return { provider, consumer, orders, users, namespace }
}

test('etcd restarted: registrations and views are right again within 2 s of etcd answering', async (t) => {
  await using etcd = await startEtcd()
  const w = await registeredWorld(etcd.endpoints)
  const leaseBefore = w.provider.session.lease?.id
  await etcd.stop()
  await etcd.restart() // resolves once etcd answers health checks
  const answered = Date.now()
  await eventually(
    async () => {
      const out = await etcd.etcdctl(['get', '--prefix', `${w.namespace}services/`, '--keys-only'])
      return out.split('\n').filter(Boolean).length === 3
    },
    'three keys in etcd',
    2_000,
  )
  // and a change after the restart reaches the consumer, so its watch is live again
  const extra = await w.provider.register({ service: 'orders', address: '10.0.0.9:80' })
  await eventually(() => w.orders.instances.length === 3, 'consumer sees the new instance', 2_000)
  t.log(
    `recovered ${Date.now() - answered} ms after etcd answered; lease ${leaseBefore === w.provider.session.lease?.id ? 'kept' : 'replaced'}`,
  )
  await extra.deregister()
  await eventually(() => w.orders.instances.length === 2, 'consumer sees the removal')
  t.deepEqual(addresses(w.orders.instances), ['10.0.0.1:80', '10.0.0.2:80'])
  t.deepEqual(addresses(w.users.instances), ['10.0.0.3:80'])
  await w.consumer.close()
  await w.provider.close()
})

test('etcd wiped: a new lease, every registration written again within 2 s, views end right', async (t) => {
  await using etcd = await startEtcd()
  const w = await registeredWorld(etcd.endpoints)
  const leaseBefore = w.provider.session.lease?.id
  // make the revision of the old store higher than the new one will be
  for (let i = 0; i < 20; i++) await etcd.etcdctl(['put', `${w.namespace}noise`, String(i)])
  await etcd.wipe()
  const answered = Date.now()
  await eventually(
    async () => {
      const out = await etcd.etcdctl(['get', '--prefix', `${w.namespace}services/`, '--keys-only'])
      return out.split('\n').filter(Boolean).length === 3
    },
    'three keys in the wiped etcd',
    2_000,
  )
  t.log(`rewritten ${Date.now() - answered} ms after etcd answered`)
  t.not(w.provider.session.lease?.id, leaseBefore)
  // the consumer's watch must not wait for the old (higher) revision: new changes must arrive
  await etcd.etcdctl(['put', `${w.namespace}services/orders/10.0.0.5:80`, '10.0.0.5:80'])
  await eventually(() => w.orders.instances.length === 3, 'consumer sees a put made after the wipe', 3_000)
  await etcd.etcdctl(['del', `${w.namespace}services/orders/10.0.0.5:80`])
  await eventually(() => w.orders.instances.length === 2, 'and its deletion')
  t.deepEqual(addresses(w.orders.instances), ['10.0.0.1:80', '10.0.0.2:80'])
  t.deepEqual(addresses(w.users.instances), ['10.0.0.3:80'])
  await w.consumer.close()
  await w.provider.close()
})

test('changes made while a watcher was disconnected are all delivered; a compacted watch relists', async (t) => {
  await using etcd = await startEtcd({ members: 3 })
  // the watcher talks to a follower, which we kill; writes go through the leader, so quorum holds
  const b = await etcd.leader()
  const a = etcd.members.find((m) => m !== b)
  const namespace = uniquePrefix('gap')
  const resets: string[] = []
  const logger = {
    ...silentLogger,
    warn: (o: object) => resets.push(String((o as { reason?: string }).reason)),
  }
  await using watcher = new EtcdKit({ endpoints: [a!.endpoint], namespace, logger })
  const view = watcher.discover('orders')
  await view.ready
  const viaB = (args: string[]) => etcdctl([b!.endpoint], args)
  const put = (k: string, v: string) => viaB(['put', `${namespace}services/orders/${k}`, v])
  const del = (k: string) => viaB(['del', `${namespace}services/orders/${k}`])

  await put('1.1.1.1:1', '1.1.1.1:1')
  await eventually(() => view.instances.length === 1, 'first instance')

  await a!.kill()
  await put('1.1.1.2:1', '1.1.1.2:1')
  await put('1.1.1.3:1', '1.1.1.3:1')
  await del('1.1.1.1:1')
  await a!.restart()
  await eventually(
    () => addresses(view.instances).join() === '1.1.1.2:1,1.1.1.3:1',
    'every change of the gap',
  )
  // resumed from the next revision, not relisted
  t.deepEqual(resets, [])

  await a!.kill()
  await put('1.1.1.4:1', '1.1.1.4:1')
  await del('1.1.1.2:1')
  await viaB(['put', `${namespace}x`, 'y'])
  const at = /"revision":(\d+)/.exec(await viaB(['get', `${namespace}x`, '-w', 'json']))![1]!
  await viaB(['compaction', '--physical', at])
  await a!.restart()
  await eventually(
    () => addresses(view.instances).join() === '1.1.1.3:1,1.1.1.4:1',
    'the state after compaction',
  )
  t.is(resets.length, 1)
  t.regex(resets[0]!, /was compacted/)
})

test('50 watched services share one watch stream', async (t) => {
  await using etcd = await startEtcd()
  await using k = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger })
  const views = Array.from({ length: 50 }, (_, i) => k.discover(`svc-${i}`))
  await Promise.all(views.map((v) => v.ready))
  await k.register({ service: 'svc-7', address: '127.0.0.1:7' })
  await eventually(() => views[7]!.instances.length === 1, 'a change on one of them')
  // counted by etcd itself: its gauges of open watch streams and watchers (read until every watch the
  // kit asked for exists there: a view is ready once listed, its watch may be created a moment later)
  const gauge = (metrics: string, name: string) =>
    Number(new RegExp(`^${name} (\\d+)`, 'm').exec(metrics)?.[1])
  let metrics = ''
  await eventually(async () => {
    metrics = await (await fetch(`${etcd.members[0]!.clientUrl}/metrics`)).text()
    return gauge(metrics, 'etcd_debugging_mvcc_watcher_total') >= 52
  }, '52 watchers in etcd')
  t.is(gauge(metrics, 'etcd_debugging_mvcc_watch_stream_total'), 1)
  // 50 views + the registry's guard of its one registered service + the drain requests on its lease
  t.is(gauge(metrics, 'etcd_debugging_mvcc_watcher_total'), 52)
  t.is(kitInternals(k).watchHub.streamsOpened, 1)
})

test('3-member cluster: the leader killed, registrations stay, watches and the session fail over to other members', async (t) => {
  await using etcd = await startEtcd({ members: 3 })
  const namespace = uniquePrefix('failover')
  await using provider = new EtcdKit({ endpoints: etcd.endpoints, namespace, ttl: 5, logger: silentLogger })
  await using consumer = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  await provider.register({ service: 'orders', address: '10.0.0.1:80' })
  const view = consumer.discover('orders')
  await eventually(() => view.instances.length === 1, 'first instance')
  const lease = provider.session.lease!.id

  const leader = await etcd.leader()
  await leader.kill()
  const killed = Date.now()
  // the cluster elects a new leader; the kits' streams on the dead member move to the others
  const extra = await provider.register({ service: 'orders', address: '10.0.0.2:80', timeout: 15_000 })
  const registered = Date.now() - killed
  await eventually(() => view.instances.length === 2, 'the consumer sees a change after the failover', 15_000)
  t.log(`after the leader was killed: registered in ${registered} ms, seen in ${Date.now() - killed} ms`)
  await extra.deregister()
  await eventually(() => view.instances.length === 1, 'and a removal')
  // the lease lived through it (the keepalive moved to another member in time)
  t.is(provider.session.lease?.id, lease)
  t.false(provider.session.lease!.signal.aborted)
  await leader.restart()
  t.deepEqual(
    view.instances.map((i) => i.address),
    ['10.0.0.1:80'],
  )
})

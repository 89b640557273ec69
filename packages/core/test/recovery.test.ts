import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { etcdctl, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test, { type ExecutionContext } from 'ava'
import { resumeWindowMs } from '../src/etcd/watch.js'
import { EtcdKit, type Instance, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { DIALECTS, eventually, everyDialect } from './helpers.js'

// Each test here stops, kills or wipes etcd: each starts its own. The registration tests register in
// every registry dialect at once and check a view of each: the promises hold for every dialect.

const addresses = (list: readonly Instance[]) => list.map((i) => i.address).sort()

test('a registered process killed with SIGKILL disappears from other views, in every dialect, within TTL + 1 s', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('kill')
  await using watcher = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  const views = DIALECTS.map((dialect) => watcher.discover('jobs', { dialect }))
  await Promise.all(views.map((v) => v.ready))
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
      DIALECTS.join(','),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  await once(child.stdout!, 'data')
  await eventually(
    () => views.every((v) => v.instances.length === 1),
    'the child registered in every dialect',
  )
  const killedAt = Date.now()
  child.kill('SIGKILL')
  await eventually(
    () => views.every((v) => v.instances.length === 0),
    'the child gone in every dialect',
    5_000,
  )
  const took = Date.now() - killedAt
  t.log(`gone ${took} ms after SIGKILL (ttl 2 s)`)
  t.true(took <= 3_000, `took ${took} ms`)
})

async function registeredWorld(endpoints: string[]) {
  const namespace = uniquePrefix('restart')
  const provider = new EtcdKit({ endpoints, namespace, ttl: 5, logger: silentLogger })
  const consumer = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  await provider.register({ service: 'orders', address: '10.0.0.1:80', dialects: everyDialect(1) })
  await provider.register({ service: 'orders', address: '10.0.0.2:80', dialects: everyDialect(2) })
  await provider.register({ service: 'users', address: '10.0.0.3:80', dialects: everyDialect() })
  const views = DIALECTS.map((dialect) => ({
    dialect,
    orders: consumer.discover('orders', { dialect }),
    users: consumer.discover('users', { dialect }),
  }))
  const right = (orders: string[]) =>
    views.every(
      (v) =>
        addresses(v.orders.instances).join() === orders.join() &&
        addresses(v.users.instances).join() === '10.0.0.3:80',
    )
  await eventually(() => right(['10.0.0.1:80', '10.0.0.2:80']), 'initial views, every dialect')
  return { provider, consumer, views, right, namespace }
}

/** The keys under the namespace, but for the session records: 6 dialects x the registrations. */
async function registryKeys(etcdctlOf: (args: string[]) => Promise<string>, namespace: string) {
  const out = await etcdctlOf(['get', '--prefix', namespace, '--keys-only'])
  return out.split('\n').filter((k) => k !== '' && !k.startsWith(`${namespace}sessions/`))
}

test('etcd restarted: registrations and views of every dialect are right again within 2 s of etcd answering', async (t) => {
  await using etcd = await startEtcd()
  const w = await registeredWorld(etcd.endpoints)
  const leaseBefore = w.provider.session.lease?.id
  await etcd.stop()
  await etcd.restart() // resolves once etcd answers health checks
  const answered = Date.now()
  await eventually(
    async () => (await registryKeys(etcd.etcdctl, w.namespace)).length === 3 * DIALECTS.length,
    'every key in etcd',
    2_000,
  )
  // and a change after the restart reaches the consumer's view of each dialect, so its watch is live again
  const extra = await w.provider.register({
    service: 'orders',
    address: '10.0.0.9:80',
    dialects: everyDialect(9),
  })
  await eventually(
    () => w.right(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.9:80']),
    'the new instance in every dialect',
    2_000,
  )
  t.log(
    `recovered ${Date.now() - answered} ms after etcd answered; lease ${leaseBefore === w.provider.session.lease?.id ? 'kept' : 'replaced'}`,
  )
  await extra.deregister()
  await eventually(() => w.right(['10.0.0.1:80', '10.0.0.2:80']), 'the removal in every dialect')
  t.pass()
  await w.consumer.close()
  await w.provider.close()
})

/**
 * etcd wiped (after `frozenMs` frozen with SIGSTOP, if any): the provider writes every registration again
 * under a new lease within 2 s, and the consumer (no session) sees a put made after the wipe. With a freeze,
 * the outage is long enough for the consumer's resume to be spread, and the provider refills the new store
 * before the consumer resumes (docs/RELIABILITY.md, "A wiped store refilled while a kit waits to resume").
 */
async function wipedThenRefilled(t: ExecutionContext, frozenMs: number) {
  await using etcd = await startEtcd()
  const w = await registeredWorld(etcd.endpoints)
  const leaseBefore = w.provider.session.lease?.id
  // make the revision of the old store higher than the new one will be, and let the consumer hear of it
  // (its idle stream's progress request, within a second): a store is known to have gone back when it
  // answers below what the kit had heard
  for (let i = 0; i < 20; i++) await etcd.etcdctl(['put', `${w.namespace}noise`, String(i)])
  const before = BigInt(await etcd.revision())
  await eventually(
    () => kitInternals(w.consumer).watchHub.storeRevision >= before,
    'the consumer heard of the old store revision',
  )
  if (frozenMs > 0) {
    etcd.pause()
    await sleep(frozenMs)
  }
  await etcd.wipe()
  const answered = Date.now()
  await eventually(
    async () => (await registryKeys(etcd.etcdctl, w.namespace)).length === 3 * DIALECTS.length,
    'every key in the wiped etcd',
    2_000,
  )
  t.log(`rewritten ${Date.now() - answered} ms after etcd answered`)
  t.not(w.provider.session.lease?.id, leaseBefore)
  // go-zero's key without an ID names the lease: it is written under the new lease's ID
  t.deepEqual(
    (await registryKeys(etcd.etcdctl, w.namespace)).filter((k) => k.includes('users.rpc/')),
    [`${w.namespace}users.rpc/${BigInt(w.provider.session.lease!.id)}`],
  )
  // the consumer's watch must not wait for the old (higher) revision, nor skip the new store's revisions
  // below it: new changes must arrive
  await etcd.etcdctl(['put', `${w.namespace}services/orders/10.0.0.5:80`, '10.0.0.5:80'])
  const etcdView = w.views.find((v) => v.dialect === 'etcd')!
  // within 3 s plus the consumer's resume window: after an outage of 2 s or more (a freeze, or a wipe's
  // restart on a loaded machine) a kit resumes its watches at a random moment within it by design (issue
  // 29's spread; 150 ms per watch: 1.8 s for the consumer's 12 views)
  const watches = kitInternals(w.consumer).watchHub.size
  await eventually(
    () => etcdView.orders.instances.length === 3,
    'consumer sees a put made after the wipe',
    3_000 + resumeWindowMs(Number.POSITIVE_INFINITY, watches),
  )
  await etcd.etcdctl(['del', `${w.namespace}services/orders/10.0.0.5:80`])
  await eventually(() => w.right(['10.0.0.1:80', '10.0.0.2:80']), 'every view right')
  await w.consumer.close()
  await w.provider.close()
}

test('etcd wiped: a new lease, every registration of every dialect written again within 2 s, views end right', (t) =>
  wipedThenRefilled(t, 0))

test('etcd frozen for 3 s, then wiped: registrations written again, and the consumer, resuming after the refill, misses nothing', (t) =>
  wipedThenRefilled(t, 3_000))

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

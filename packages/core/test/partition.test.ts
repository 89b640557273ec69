import { setTimeout as sleep } from 'node:timers/promises'
import { type EtcdCluster, type FaultProxy, proxyCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { DIALECTS, eventually, everyDialect } from './helpers.js'

// In the suite: ttl 4 and a 12 s partition (three TTLs); the timings scale with the TTL. The case of the
// issue (ttl 10, 30 s): ETCDKIT_FULL_PARTITION=1.
const full = process.env.ETCDKIT_FULL_PARTITION === '1'
const ttl = full ? 10 : 4
const partitionMs = full ? 30_000 : 12_000

/**
 * A kit that reaches each member of `etcd` through its own proxy, holding a registration in every registry
 * dialect, a lock, a view of a service in each dialect and a config value; and what to silence.
 */
async function partitionedKit(
  t: { log(...values: unknown[]): void },
  etcd: EtcdCluster,
  silence: 'keepalive' | 'watch',
) {
  const proxied = await proxyCluster(etcd)
  const namespace = uniquePrefix(`partition-${silence}`)
  const logger = {
    ...silentLogger,
    warn: (obj: unknown, msg?: string) => t.log(`${silence} kit: ${msg} ${JSON.stringify(obj)}`),
  }
  const kit = new EtcdKit({ endpoints: proxied.endpoints, ttl, namespace, logger })
  const observer = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  const reg = await kit.register({ service: 'orders', address: '10.0.0.1:80', dialects: everyDialect() })
  const held = await kit.lock('/jobs/report').acquire()
  const views = DIALECTS.map((dialect) => kit.discover('orders', { dialect }))
  const flag = kit.config.value('flag', { default: 'off' })
  await Promise.all([...views.map((v) => v.ready), flag.ready])
  await eventually(
    () => views.every((v) => v.instances.length === 1),
    'the own instance in view, every dialect',
  )
  const lease = kit.session.lease!
  const endpoint = silence === 'keepalive' ? kit.session.endpoint : kitInternals(kit).watchHub.health.endpoint
  const proxy: FaultProxy = proxied.proxies.find((p) => p.endpoint === endpoint)!
  t.log(
    `${silence}: keepalive on ${kit.session.endpoint}, watch on ${kitInternals(kit).watchHub.health.endpoint}; silencing ${endpoint}`,
  )
  return {
    kit,
    observer,
    reg,
    held,
    views,
    flag,
    lease,
    proxy,
    namespace,
    async close() {
      proxy.pass()
      await Promise.all([kit.close(), observer.close()])
      await proxied.close()
    },
  }
}

test(`one silent member of three (ttl ${ttl}, ${partitionMs / 1000} s): the kit keeps its lease, lock and registration (every dialect), and its watches of every dialect catch up within 5 s`, async (t) => {
  t.timeout(partitionMs + 60_000)
  await using etcd = await startEtcd({ members: 3 })
  const cases = await Promise.all([partitionedKit(t, etcd, 'keepalive'), partitionedKit(t, etcd, 'watch')])
  try {
    const silencedAt = Date.now()
    for (const c of cases) c.proxy.blackhole()
    // changes made elsewhere at once: the kit's views must show them within 5 s of the silence
    const others = await Promise.all(
      cases.map(async (c) => {
        const other = await c.observer.register({
          service: 'orders',
          address: '10.0.0.2:80',
          dialects: everyDialect(),
        })
        await c.observer.config.set('flag', 'on')
        return other
      }),
    )
    const seen = await Promise.all(
      cases.map(async (c) => {
        await eventually(
          () => c.views.every((v) => v.instances.length === 2) && c.flag.current === 'on',
          'the views (every dialect) current again',
          5_000 - (Date.now() - silencedAt),
        )
        return Date.now() - silencedAt
      }),
    )
    t.log(`views current again ${seen.join(' / ')} ms after the member went silent`)
    // each case's keepalive and watch leave the silent member (or were not on it)
    const moved = await Promise.all(
      cases.map(async (c) => {
        await eventually(
          () =>
            c.kit.session.endpoint !== undefined &&
            c.kit.session.endpoint !== c.proxy.endpoint &&
            kitInternals(c.kit).watchHub.health.connected &&
            kitInternals(c.kit).watchHub.health.endpoint !== c.proxy.endpoint,
          'the streams off the silent member',
          5_000,
        )
        return Date.now() - silencedAt
      }),
    )
    t.log(`streams off the silent member after ${moved.join(' / ')} ms`)

    // for the rest of the partition: lease, lock and every key of the registration intact, in the kit and in etcd
    let checks = 0
    while (Date.now() - silencedAt < partitionMs) {
      const keys = await etcd.etcdctl(['get', '--prefix', '--keys-only', 't-partition-'])
      const broken = cases.flatMap((c) => [
        ...(c.lease.signal.aborted ? [`lease lost: ${String(c.lease.signal.reason)}`] : []),
        ...(c.held.held ? [] : ['lock not held']),
        ...(c.kit.session.lease?.id === c.lease.id ? [] : ['another lease']),
        ...c.reg.keys.flatMap((k) =>
          keys.includes(`${c.namespace}${k}`) ? [] : [`registration key ${k} missing from etcd: ${keys}`],
        ),
        ...(keys.includes(`${c.namespace}/jobs/report/${c.lease.hex}`) ? [] : [`lock key missing: ${keys}`]),
      ])
      t.deepEqual(broken, [], `${Date.now() - silencedAt} ms into the partition`)
      if (broken.length > 0) break
      checks++
      await sleep(500)
    }
    t.true(checks > 0)
    await Promise.all(others.map((o) => o.deregister()))
    for (const c of cases) c.proxy.pass()
  } finally {
    await Promise.all(cases.map((c) => c.close()))
  }
})

test('a watch stream reopened on a follower still catching up resumes there: no false "wiped" reset', async (t) => {
  t.timeout(60_000)
  await using etcd = await startEtcd({ members: 3 })
  const leader = await etcd.leader()
  const follower = etcd.members.find((m) => m !== leader)!
  const proxied = await proxyCluster([leader.endpoint, follower.endpoint])
  t.teardown(() => proxied.close())
  const [toLeader, toFollower] = proxied.proxies as [FaultProxy, FaultProxy]
  const namespace = uniquePrefix('lagging')
  const warnings: string[] = []
  let resumedBehind = false
  const logger = {
    ...silentLogger,
    warn: (obj: unknown, msg?: string) => warnings.push(`${msg} ${JSON.stringify(obj)}`),
    debug: (_obj: unknown, msg?: string) => {
      if (msg?.includes('catching up')) resumedBehind = true
    },
  }
  await using writer = new EtcdKit({ endpoints: [leader.endpoint], namespace, logger: silentLogger })
  // a kit reaching the leader and one follower, its watch stream on the leader
  let kit: EtcdKit | undefined
  for (let i = 0; i < 20 && !kit; i++) {
    const k = new EtcdKit({ endpoints: proxied.endpoints, namespace, logger })
    await k.discover('orders').ready
    await eventually(() => kitInternals(k).watchHub.health.endpoint !== undefined, 'the watch stream open')
    if (kitInternals(k).watchHub.health.endpoint === toLeader.endpoint) kit = k
    else await k.close()
  }
  if (!kit) return t.fail('the watch stream never opened on the leader')
  t.teardown(() => kit.close())
  const view = kit.discover('orders')
  await view.ready
  // the follower falls behind while the kit's view follows the leader
  follower.pause()
  t.teardown(() => follower.resume())
  // (a thousand revisions to catch up on first, so that it is still behind when it answers the kit)
  for (let i = 0; i < 1_000; i += 100)
    await Promise.all(
      Array.from({ length: 100 }, (_, j) => writer.client.put(`${namespace}noise/${i + j}`).value('x')),
    )
  for (let i = 1; i <= 20; i++) await writer.register({ service: 'orders', address: `10.0.0.${i}:80` })
  await eventually(() => view.instances.length === 20, 'the view has the 20 instances')
  // the leader goes silent for the kit: its stream moves to the follower, still paused, then let go
  const opened = kitInternals(kit).watchHub.streamsOpened
  toLeader.blackhole()
  await eventually(
    () => kitInternals(kit).watchHub.streamsOpened > opened,
    'the stream reopened on the follower',
    15_000,
  )
  t.is(kitInternals(kit).watchHub.health.endpoint, toFollower.endpoint)
  follower.resume()
  await writer.register({ service: 'orders', address: '10.0.0.21:80' })
  await eventually(() => view.instances.length === 21, 'the view follows on the follower', 10_000)
  t.deepEqual(
    warnings.filter((w) => /went back|reset/.test(w)),
    [],
    'no watch was reset: the follower was only behind',
  )
  // whether the follower answered the watch before catching up (it usually does) is up to the scheduler
  t.log(
    resumedBehind
      ? 'the follower answered behind, and the watch resumed there'
      : 'the follower had caught up first',
  )
})

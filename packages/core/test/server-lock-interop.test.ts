import { type EtcdGateway, etcdGateway } from '@etcdkit/testing'
import test from 'ava'
import { etcd, eventually, kit, within } from './helpers.js'

// etcd's server-side lock and election services (v3lock, v3election: what jetcd, Rust's etcd-client and
// etcd3-py call) on one side, reached through etcd's gRPC gateway; etcdkit's lock and election on the other.
// Both run Go's concurrency.Mutex / Election layout, `{name}/{lease hex}`, so they must share one queue.

test.after.always(async () => (await etcd()).close())

async function gateway(): Promise<EtcdGateway> {
  return etcdGateway((await etcd()).endpoints[0]!)
}

const settledSoon = (p: Promise<unknown>, ms = 400) =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise((r) => setTimeout(() => r(false), ms)),
  ])

const leaseHex = (key: string) => key.slice(key.lastIndexOf('/') + 1)

test('a server-side Lock and an etcdkit lock exclude each other, both ways, in one queue', async (t) => {
  await using k = await kit()
  const gw = await gateway()
  const name = '/jobs/server-lock'
  const full = `${k.namespace}${name}`
  const lease = await gw.grant(30)
  t.teardown(() => gw.revoke(lease).catch(() => {}))

  const theirs = await gw.lock(full, { lease })
  t.is(theirs.key, `${full}/${lease.toString(16)}`, "the server writes Go's Mutex key: {name}/{lease hex}")
  const acquiring = k.lock(name).acquire()
  t.false(await settledSoon(acquiring), 'etcdkit must wait while the server-side lock is held')
  const [first, second] = await k.lock(name).holders()
  t.is(first!.key, `${name}/${lease.toString(16)}`)
  t.is(first!.role, 'holder')
  t.is(second!.role, 'waiter', 'etcdkit queues behind the server-side holder')
  await gw.unlock(theirs.key)
  const ours = await within(acquiring, 5_000, 'etcdkit takes over after Unlock')
  t.true(ours.fencingToken > theirs.createRevision)

  // etcdkit holds it: the server-side Lock waits
  const waiting = gw.lock(full, { lease })
  t.false(await settledSoon(waiting), 'the server-side Lock must wait while etcdkit holds the lock')
  await ours.release()
  const next = await within(waiting, 5_000, 'the server-side Lock takes over after release')
  t.true(next.createRevision > ours.fencingToken)
  await gw.unlock(next.key)
})

test('server-side and etcdkit waiters are served first come, first served', async (t) => {
  await using a = await kit()
  await using b = await kit({ namespace: a.namespace })
  const gw = await gateway()
  const name = '/jobs/queue'
  const full = `${a.namespace}${name}`
  const [l1, l2] = [await gw.grant(30), await gw.grant(30)]
  t.teardown(() => Promise.all([gw.revoke(l1), gw.revoke(l2)]).catch(() => {}))
  const order: string[] = []
  const noted =
    (who: string) =>
    <T>(value: T): T => {
      order.push(who)
      return value
    }
  const queued = async (n: number) =>
    eventually(async () => (await a.lock(name).holders()).length === n, `${n} keys in the queue`)

  const holder = await a.lock(name).acquire()
  const g1 = gw.lock(full, { lease: l1 }).then(noted('server-1'))
  await queued(2)
  const k2 = b.lock(name).acquire().then(noted('kit-b'))
  await queued(3)
  const g2 = gw.lock(full, { lease: l2 }).then(noted('server-2'))
  await queued(4)

  await holder.release()
  const s1 = await within(g1, 5_000, 'first server-side waiter')
  t.false(await settledSoon(k2, 200))
  await gw.unlock(s1.key)
  const hb = await within(k2, 5_000, 'etcdkit waiter')
  t.false(await settledSoon(g2, 200))
  await hb.release()
  const s2 = await within(g2, 5_000, 'second server-side waiter')
  await gw.unlock(s2.key)
  t.deepEqual(order, ['server-1', 'kit-b', 'server-2'])
})

test("fencing: etcdkit's guarded write with a stale token fails once a server-side lock took over", async (t) => {
  await using k = await kit({ ttl: 5 })
  const gw = await gateway()
  const name = '/jobs/fenced'
  const full = `${k.namespace}${name}`
  const held = await k.lock(name).acquire()
  t.true(await held.ifOwner({ put: { '/fenced/value': 'kit-1' } }))

  // the kit's lease ends (as if the process stalled past its TTL); a server-side client takes the lock
  await gw.revoke(BigInt(`0x${leaseHex(held.key)}`))
  const lease = await gw.grant(30)
  t.teardown(() => gw.revoke(lease).catch(() => {}))
  const theirs = await within(gw.lock(full, { lease }), 5_000, 'server-side Lock after the revoke')
  t.true(await gw.putIfOwner(theirs.key, theirs.createRevision, `${k.namespace}/fenced/value`, 'server'))

  t.false(await held.ifOwner({ put: { '/fenced/value': 'kit-stale' } }), 'a stale holder must not write')
  t.is((await gw.get(`${k.namespace}/fenced/value`))?.value, 'server')
  await eventually(() => held.signal.aborted, "the kit's lock reported lost")
  await gw.unlock(theirs.key)
})

test("fencing: a server-side holder's guarded write fails once its lease ran out and etcdkit took over", async (t) => {
  await using k = await kit()
  const gw = await gateway()
  const name = '/jobs/fenced-server'
  const full = `${k.namespace}${name}`
  // a client that stopped keeping its lease alive (jetcd paused, a Rust process stuck)
  const lease = await gw.grant(2)
  const theirs = await gw.lock(full, { lease })
  t.true(await gw.putIfOwner(theirs.key, theirs.createRevision, `${k.namespace}/fenced`, 'server-1'))
  const ours = await within(k.lock(name).acquire(), 8_000, 'etcdkit gets the lock once the lease expired')
  t.true(ours.fencingToken > theirs.createRevision)
  t.true(await ours.ifOwner({ put: { '/fenced': 'kit' } }))
  t.false(await gw.putIfOwner(theirs.key, theirs.createRevision, `${k.namespace}/fenced`, 'server-stale'))
  t.is((await gw.get(`${k.namespace}/fenced`))?.value, 'kit')
  await ours.release()
})

test('pitfall: a server-side Lock with lease 0 sits on a 60 s lease nobody keeps alive', async (t) => {
  const { namespace } = await kit()
  const gw = await gateway()
  const theirs = await gw.lock(`${namespace}/jobs/lease-0`)
  const kv = await gw.get(theirs.key)
  t.not(kv?.lease, 0n, 'etcd granted a lease for the call')
  const first = await gw.timeToLive(kv!.lease)
  t.is(first.grantedTtl, 60)
  await eventually(
    async () => (await gw.timeToLive(kv!.lease)).ttl < first.ttl,
    'the TTL runs down: the lease is not kept alive',
    5_000,
  )
  t.is(theirs.key, `${namespace}/jobs/lease-0/${kv!.lease.toString(16)}`)
  await gw.unlock(theirs.key)
  await gw.revoke(kv!.lease)
})

test('a server-side Lock that is given up (request aborted) leaves the queue; etcdkit is not blocked', async (t) => {
  await using k = await kit()
  const gw = await gateway()
  const name = '/jobs/abandoned'
  const lease = await gw.grant(30)
  t.teardown(() => gw.revoke(lease).catch(() => {}))
  const held = await k.lock(name).acquire()
  const abort = new AbortController()
  const waiting = gw.lock(`${k.namespace}${name}`, { lease, signal: abort.signal })
  await eventually(async () => (await k.lock(name).holders()).length === 2, 'the server-side waiter queued')
  abort.abort()
  await t.throwsAsync(waiting)
  await eventually(async () => (await k.lock(name).holders()).length === 1, 'its waiting key deleted')
  await held.release()
  const again = await within(k.lock(name).acquire(), 3_000, 'etcdkit takes the lock again')
  await again.release()
})

test('a server-side Campaign and an etcdkit election see one leader, both ways', async (t) => {
  await using k = await kit()
  const gw = await gateway()
  const name = '/leader/server'
  const full = `${k.namespace}${name}`
  const lease = await gw.grant(30)
  t.teardown(() => gw.revoke(lease).catch(() => {}))
  const election = k.election(name)
  const observer = election.observe()
  await observer.ready

  const theirs = await gw.campaign(full, 'server-candidate', { lease })
  t.is(theirs.key, `${full}/${lease.toString(16)}`)
  await eventually(
    () => observer.leader?.value === 'server-candidate',
    'etcdkit observes the server-side leader',
  )
  t.is((await election.leader())?.revision, theirs.rev)
  const campaign = election.campaign('node-candidate')
  t.false(await settledSoon(campaign), 'etcdkit must wait while the server-side candidate leads')

  await gw.proclaim(theirs, 'server-proclaimed')
  await eventually(() => observer.leader?.value === 'server-proclaimed', 'etcdkit observes Proclaim')
  await gw.resign(theirs)
  const leadership = await within(campaign, 5_000, 'etcdkit leads after Resign')
  t.true(leadership.revision > theirs.rev)
  t.is((await gw.leader(full))?.value, 'node-candidate', "etcd's Leader sees etcdkit's candidate")

  // etcdkit leads: the server-side Campaign waits; etcdkit's proclaim is seen by etcd's Leader
  const waiting = gw.campaign(full, 'server-again', { lease })
  t.false(await settledSoon(waiting), 'the server-side Campaign must wait while etcdkit leads')
  await leadership.proclaim('node-proclaimed')
  t.is((await gw.leader(full))?.value, 'node-proclaimed')
  await leadership.resign()
  const again = await within(waiting, 5_000, 'the server-side candidate leads after resign')
  t.true(again.rev > leadership.revision)
  t.is((await election.leader())?.value, 'server-again')
  // a stale LeaderKey (an earlier term) cannot proclaim
  await t.throwsAsync(gw.proclaim(theirs, 'stale'))
  await gw.resign(again)
  t.is(await gw.leader(full), undefined)
  observer.close()
})

import { setTimeout as sleep } from 'node:timers/promises'
import { spawnEtcdctl, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import type { EtcdKit, Leader } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { etcd, eventually, kit, settled } from './helpers.js'

test.after.always(async () => (await etcd()).close())

async function candidates(k: EtcdKit, name: string): Promise<Array<[string, string]>> {
  const res = await kitInternals(k).keyspace.kv.range({
    ...kitInternals(k).keyspace.range(`${name}/`),
    sort_order: 'Ascend',
    sort_target: 'Create',
  })
  return res.kvs.map((kv) => [kitInternals(k).keyspace.name(kv.key), kv.value.toString()])
}

test('a candidate key is {name}/{lease hex} = proposal on the lease; leader() and proclaim()', async (t) => {
  await using k = await kit()
  const election = k.election('/leader/scheduler')
  t.is(k.election('/leader/scheduler'), election, 'one object per name per kit')
  t.is(await election.leader(), undefined)
  const leadership = await election.campaign('10.0.0.7:3000')
  const hex = k.session.lease!.hex
  t.is(leadership.key, `/leader/scheduler/${hex}`)
  t.true(election.isLeader)
  t.deepEqual(await candidates(k, '/leader/scheduler'), [[leadership.key, '10.0.0.7:3000']])
  const leader = await election.leader()
  t.deepEqual(leader, {
    key: leadership.key,
    value: '10.0.0.7:3000',
    revision: leadership.revision,
    lease: hex,
  })
  await election.proclaim('10.0.0.7:3001')
  t.is((await election.leader())?.value, '10.0.0.7:3001')
  // campaigning again while leader proclaims
  t.is(await election.campaign('v3'), leadership)
  t.is(leadership.value, 'v3')
  await election.resign()
  await election.resign()
  t.false(election.isLeader)
  t.is((leadership.signal.reason as { code?: string }).code, 'ETCDKIT_LOCK_RELEASED')
  t.is(await election.leader(), undefined)
  const err = await t.throwsAsync(election.proclaim('late'))
  t.is((err as { code?: string }).code, 'ETCDKIT_NOT_LEADER')
})

test('etcdctl elect leading blocks campaign until it exits; observe() sees both leaders', async (t) => {
  const { endpoints } = await etcd()
  await using k = await kit()
  const name = 'elect/ctl-first'
  const full = `${k.namespace}${name}`
  const election = k.election(name)
  const ctl = spawnEtcdctl(endpoints, ['elect', full, 'go-proposal'])
  t.teardown(() => ctl.stop())
  const keyLine = await ctl.waitForLine((l) => l.startsWith(`${full}/`))
  await ctl.waitForLine((l) => l === 'go-proposal')
  const observer = election.observe()
  t.teardown(() => observer.close())
  await observer.ready
  t.is(observer.leader?.value, 'go-proposal')
  t.is(observer.leader?.key, keyLine.slice(k.namespace.length))
  const seen: Array<Leader | undefined> = []
  observer.on('change', (l) => seen.push(l))

  const campaigning = election.campaign('ts-proposal')
  await sleep(500)
  t.false(await settled(campaigning), 'leader while etcdctl leads')
  t.deepEqual((await election.leader())?.value, 'go-proposal')
  await ctl.stop()
  const leadership = await campaigning
  await eventually(() => observer.leader?.value === 'ts-proposal', 'observer sees the new leader')
  t.is(observer.leader?.key, leadership.key)
  t.is(seen.at(-1)?.value, 'ts-proposal')
  await leadership.resign()
  await eventually(() => observer.leader === undefined, 'observer sees no leader')
})

test('an etcdkit leader blocks etcdctl elect until resign; etcdctl elect -l observes our proclamations', async (t) => {
  const { endpoints } = await etcd()
  await using k = await kit()
  const name = 'elect/kit-first'
  const full = `${k.namespace}${name}`
  const election = k.election(name)
  const leadership = await election.campaign('first')
  const listen = spawnEtcdctl(endpoints, ['elect', '-l', full])
  t.teardown(() => listen.stop())
  await listen.waitForLine((l) => l === 'first')
  await election.proclaim('second')
  await listen.waitForLine((l) => l === 'second')

  const ctl = spawnEtcdctl(endpoints, ['elect', full, 'go-proposal'])
  t.teardown(() => ctl.stop())
  await eventually(async () => (await candidates(k, name)).length === 2, 'etcdctl campaigning')
  await sleep(300)
  t.deepEqual(ctl.lines, [], 'etcdctl elected while etcdkit leads')
  await leadership.resign()
  await ctl.waitForLine((l) => l === 'go-proposal')
  await listen.waitForLine((l) => l === 'go-proposal')
})

test('candidates lead in the order they campaigned; an aborted campaign leaves no key', async (t) => {
  const ns = uniquePrefix('order')
  const all = await Promise.all([0, 1, 2, 3].map(() => kit({ namespace: ns })))
  t.teardown(() => Promise.all(all.map((k) => k.close())))
  const name = 'elect/order'
  const first = await all[0]!.election(name).campaign('c0')
  const ctrl = new AbortController()
  const c1 = all[1]!.election(name).campaign('c1', { signal: ctrl.signal })
  await eventually(async () => (await candidates(all[0]!, name)).length === 2, 'c1 campaigning')
  const c2 = all[2]!.election(name).campaign('c2')
  await eventually(async () => (await candidates(all[0]!, name)).length === 3, 'c2 campaigning')
  const c3 = all[3]!.election(name).campaign('c3')
  await eventually(async () => (await candidates(all[0]!, name)).length === 4, 'c3 campaigning')
  const again = await t.throwsAsync(all[2]!.election(name).campaign('twice'))
  t.is((again as { code?: string }).code, 'ETCDKIT_ALREADY_CAMPAIGNING')

  ctrl.abort(new Error('withdrawn'))
  await t.throwsAsync(c1, { message: 'withdrawn' })
  await eventually(async () => (await candidates(all[0]!, name)).length === 3, 'c1 key deleted')
  t.deepEqual(
    (await candidates(all[0]!, name)).map(([, v]) => v),
    ['c0', 'c2', 'c3'],
  )
  await first.resign()
  const l2 = await c2
  t.is((await all[0]!.election(name).leader())?.value, 'c2')
  t.false(await settled(c3))
  await l2.resign()
  const l3 = await c3
  t.true(l3.revision > l2.revision)
  await l3.resign()
})

test('leadership is lost at once when its key is deleted; the observer iterates changes', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const election = k.election('elect/lost')
  const observer = election.observe()
  const values: Array<string | undefined> = []
  const iterating = (async () => {
    for await (const leader of observer) values.push(leader?.value)
  })()
  const leadership = await election.campaign('me')
  await eventually(() => values.includes('me'), 'iterated the leader')
  await etcdctl(['del', `${k.namespace}${leadership.key}`])
  await eventually(() => leadership.signal.aborted, 'leadership signal aborted')
  t.is((leadership.signal.reason as { code?: string }).code, 'ETCDKIT_LOCK_LOST')
  t.false(election.isLeader)
  await eventually(() => values.at(-1) === undefined && values.length >= 3, 'iterated no leader')
  t.deepEqual(values, [undefined, 'me', undefined])
  observer.close()
  await iterating
  await t.throwsAsync(election.proclaim('x'), { code: 'ETCDKIT_NOT_LEADER' } as never)
})

test('a leader whose lease is lost is told at once and does not campaign again by itself', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const election = k.election('elect/lease')
  const leadership = await election.campaign('me')
  const oldLease = k.session.lease!
  await etcdctl(['lease', 'revoke', oldLease.hex])
  await eventually(() => leadership.signal.aborted, 'leadership signal aborted')
  t.is((leadership.signal.reason as { code?: string }).code, 'ETCDKIT_LOCK_LOST')
  t.false(election.isLeader)
  await eventually(() => k.session.lease !== undefined && k.session.lease.id !== oldLease.id, 'a new lease')
  await sleep(300)
  t.deepEqual(await candidates(k, 'elect/lease'), [])
  // campaigning again is the caller's decision, and works on the new lease
  const again = await election.campaign('me again')
  t.is(again.key, `elect/lease/${k.session.lease!.hex}`)
  await again.resign()
})

test('bad election names and proposals are rejected with the bad value in the message', async (t) => {
  await using k = await kit()
  t.throws(() => k.election(''), { message: /invalid election name ""/ })
  t.throws(() => k.election(7 as never), { message: /invalid election name 7/ })
  await t.throwsAsync(k.election('e').campaign(3 as never), { message: /invalid election proposal 3/ })
  await t.throwsAsync(k.election('e').campaign('v', { signal: {} as never }), {
    message: /invalid signal \{\}/,
  })
  await t.throwsAsync(k.election('e').proclaim(undefined as never), {
    message: /invalid election proposal undefined/,
  })
})

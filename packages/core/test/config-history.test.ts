import { hostname } from 'node:os'
import { startEtcd } from '@etcdkit/testing'
import test from 'ava'
import {
  ConfigConflictError,
  ConfigRevisionUnavailableError,
  EtcdKit,
  InvalidArgumentError,
  silentLogger,
} from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { etcd, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('history lists the last values with revision, version and writer; etcdctl reads the values as plain text', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ service: 'orders' })
  const r1 = await k.config.set('limit', '100')
  const r2 = await k.config.set('limit', '200', { writer: 'alice' })
  const r3 = await k.config.set('limit', '300', { writer: 'deploy-42' })
  await etcdctl(['put', `${k.namespace}config/limit`, '400']) // no writer record
  t.is(await etcdctl(['get', `${k.namespace}config/limit`, '--print-value-only']), '400\n')
  t.deepEqual(
    (await etcdctl(['get', '--prefix', `${k.namespace}config/`, '--keys-only'])).split('\n').filter(Boolean),
    [`${k.namespace}config/limit`],
    'writer records live outside the config prefix',
  )
  const h = await k.config.history('limit')
  t.deepEqual(
    h.map((e) => [e.value, e.version, e.writer?.writer]),
    [
      ['400', '4', undefined],
      ['300', '3', 'deploy-42'],
      ['200', '2', 'alice'],
      ['100', '1', undefined],
    ],
  )
  t.deepEqual(
    h.slice(1).map((e) => e.revision),
    [r3, r2, r1],
  )
  t.is(h[0]!.key, 'config/limit')
  t.is(h[0]!.writer, undefined)
  t.is(h[0]!.time, undefined)
  t.is(h[3]!.writer?.service, 'orders')
  t.is(h[3]!.writer?.hostname, hostname())
  t.is(h[3]!.writer?.pid, process.pid)
  t.true(h[2]!.time instanceof Date && Math.abs(h[2]!.time.getTime() - Date.now()) < 60_000)
  t.is(h[1]!.modRevision, r3)
  t.is(h[1]!.createRevision, r1)
  t.deepEqual(
    (await k.config.history('limit', { limit: 2 })).map((e) => e.value),
    ['400', '300'],
  )
  t.deepEqual(await k.config.history('nothing'), [])
  await t.throwsAsync(k.config.history('limit', { limit: 0 }), { instanceOf: InvalidArgumentError })
})

test('rollback restores an earlier value and records it; a rollback racing with a concurrent change is refused', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const r1 = await k.config.set('mode', 'safe')
  await k.config.set('mode', 'fast')
  const done = await k.config.rollback('mode', r1, { writer: 'bob' })
  t.true(done.written)
  t.is(done.from, r1)
  t.is(await k.config.get('mode'), 'safe')
  const [latest] = await k.config.history('mode')
  t.is(latest!.revision, done.revision)
  t.is(latest!.writer?.writer, 'bob')
  t.is(latest!.writer?.rollbackOf, r1)
  t.deepEqual(await k.config.rollback('mode', r1), { from: r1, revision: done.revision, written: false })

  // a change lands between the rollback's read and its txn: the txn's guard refuses, nothing is written
  await k.config.set('mode', 'fast')
  const kv = kitInternals(k).keyspace.kv
  const txn = kv.txn.bind(kv)
  kv.txn = (async (...args: Parameters<typeof txn>) => {
    await etcdctl(['put', `${k.namespace}config/mode`, 'turbo'])
    return txn(...args)
  }) as typeof kv.txn
  const err = await t.throwsAsync(k.config.rollback('mode', r1), { instanceOf: ConfigConflictError })
  kv.txn = txn
  t.is(err?.code, 'ETCDKIT_CONFIG_CONFLICT')
  t.is(err?.key, 'config/mode')
  t.is(await k.config.get('mode'), 'turbo', 'the concurrent change stands')

  // expect: the revision a user looked at; anything newer refuses
  const seen = (await k.config.history('mode'))[0]!.modRevision
  await k.config.set('mode', 'other')
  await t.throwsAsync(k.config.rollback('mode', r1, { expect: seen }), { instanceOf: ConfigConflictError })
  t.is(await k.config.get('mode'), 'other')

  const elsewhere = await k.config.set('other', 'x') // a revision at which "mode" was not written
  const bad = await t.throwsAsync(k.config.rollback('mode', elsewhere), {
    instanceOf: ConfigRevisionUnavailableError,
  })
  t.is(bad?.code, 'ETCDKIT_CONFIG_REVISION_UNAVAILABLE')
  await t.throwsAsync(k.config.rollback('mode', 'latest'), { instanceOf: InvalidArgumentError })
})

test.serial(
  'history stops at the compaction horizon; rolling back to a compacted revision is refused',
  async (t) => {
    await using cluster = await startEtcd()
    await using k = new EtcdKit({ endpoints: cluster.endpoints, namespace: 'h/', logger: silentLogger })
    const r1 = await k.config.set('v', '1')
    await k.config.set('v', '2')
    const r3 = await k.config.set('v', '3')
    await k.config.set('v', '4')
    await cluster.etcdctl(['compact', r3])
    t.deepEqual(
      (await k.config.history('v')).map((e) => e.value),
      ['4', '3'],
    )
    await t.throwsAsync(k.config.rollback('v', r1), {
      instanceOf: ConfigRevisionUnavailableError,
      message: /compacted/,
    })
    const back = await k.config.rollback('v', r3)
    t.true(back.written)
    t.is(await k.config.get('v'), '3')
  },
)

test('set with expect writes only if the key is still at that mod revision ("0": absent), else ConfigConflictError and nothing written', async (t) => {
  await using k = await kit({ service: 'orders' })
  const r1 = await k.config.set('guarded', 'a', { expect: '0' })
  await t.throwsAsync(k.config.set('guarded', 'x', { expect: '0' }), {
    instanceOf: ConfigConflictError,
    message:
      /config key "config\/guarded" not written: it changed since it was read \(mod revision 0 expected\)/,
  })
  const r2 = await k.config.set('guarded', 'b', { expect: r1, writer: 'alice' })
  await t.throwsAsync(k.config.set('guarded', 'y', { expect: r1 }), { instanceOf: ConfigConflictError })
  t.is(await k.config.get('guarded'), 'b')
  const [now] = await k.config.history('guarded', { limit: 1 })
  t.like(now, { revision: r2, writer: { writer: 'alice', service: 'orders' } })
  await t.throwsAsync(k.config.set('guarded', 'z', { expect: 'x1' }), {
    instanceOf: InvalidArgumentError,
    message: /invalid expect "x1"/,
  })
  await t.throwsAsync(k.config.setMany({ guarded: 'z' }, { expect: r2 } as never), {
    message: /unknown config key option "expect"/,
  })
})

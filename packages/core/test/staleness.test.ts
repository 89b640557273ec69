import { etcdctl, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { DIALECTS, eventually, rawEntries } from './helpers.js'

// Each test here kills or restarts etcd: each starts its own, one at a time.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Records `stale` / `current` events of an emitter. */
function transitions(emitter: { on(event: 'stale' | 'current', listener: () => void): unknown }) {
  const seen: string[] = []
  emitter.on('stale', () => seen.push('stale'))
  emitter.on('current', () => seen.push('current'))
  return seen
}

test.serial(
  'a discovery view of each dialect says when it is stale (etcd killed) and current again (etcd back), with events',
  async (t) => {
    await using etcd = await startEtcd()
    const namespace = uniquePrefix('stale')
    await using k = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
    const views = DIALECTS.map((dialect) => k.discover('orders', { dialect }))
    for (const view of views) {
      t.true(view.stale, `${view.dialect}: stale before the first list`)
      t.is(view.syncedAt, undefined)
    }
    await Promise.all(views.map((v) => v.ready))
    await eventually(() => views.every((v) => !v.stale), 'current once the watch is confirmed')
    for (const view of views)
      t.true(Math.abs(view.syncedAt! - Date.now()) < 50, `${view.dialect}: syncedAt is now while current`)
    const seen = views.map(transitions)

    // each framework's entry for one instance, put raw in one txn: one revision for every dialect
    const puts = rawEntries('orders', '10.0.0.1:80').map((e) =>
      k.client.put(`${namespace}${e.key}`).value(e.value),
    )
    const res = await k.client
      .if(`${namespace}nothing`, 'Create', '==', 0)
      .then(...puts)
      .commit()
    const revision = res.header.revision
    await eventually(
      () => views.every((v) => v.instances.length === 1),
      'the instance listed in every dialect',
    )
    for (const view of views) t.is(view.syncedRevision, revision, view.dialect)

    const killedAt = Date.now()
    await etcd.kill()
    await eventually(() => views.every((v) => v.stale), 'stale once the watch stream broke', 5_000)
    t.log(`stale ${Date.now() - killedAt} ms after etcd was killed`)
    const lastKnown = views.map((v) => v.syncedAt!)
    for (const at of lastKnown)
      t.true(at <= Date.now() && at >= killedAt - 1_000, `syncedAt ${at}, killed at ${killedAt}`)
    await sleep(300)
    t.deepEqual(
      views.map((v) => v.syncedAt),
      lastKnown,
      'syncedAt stays when it was last known current',
    )
    for (const view of views)
      t.deepEqual(
        view.instances.map((i) => i.address),
        ['10.0.0.1:80'],
        `${view.dialect}: the last known set is kept`,
      )

    await etcd.restart()
    const answered = Date.now()
    await eventually(() => views.every((v) => !v.stale), 'current again', 5_000)
    t.log(`current ${Date.now() - answered} ms after etcd answered`)
    for (const [i, view] of views.entries()) {
      t.deepEqual(seen[i], ['stale', 'current'], view.dialect)
      t.is(view.syncedRevision, revision, view.dialect)
    }
    // closed views are not kept current
    for (const view of views) {
      view.close()
      t.true(view.stale)
    }
  },
)

test.serial(
  'config values and watches: stale and current with events; after a compaction every reader agrees on the newest good value the history still holds',
  async (t) => {
    await using etcd = await startEtcd({ members: 3 })
    const leader = await etcd.leader()
    const [a, b] = etcd.members.filter((m) => m !== leader)
    const namespace = uniquePrefix('cfg-history')
    // reader A talks to member a only (which we cut off), reader B to member b
    await using kitA = new EtcdKit({ endpoints: [a!.endpoint], namespace, logger: silentLogger })
    await using kitB = new EtcdKit({ endpoints: [b!.endpoint], namespace, logger: silentLogger })
    const put = async (key: string, value: string) => {
      const out = await etcdctl([b!.endpoint], ['put', `${namespace}config/${key}`, value, '-w', 'json'])
      return /"revision":(\d+)/.exec(out)![1]!
    }
    const open = (k: EtcdKit, key: string) => k.config.value(key, { parse: Number })
    const a1 = open(kitA, 'k1')
    const a2 = open(kitA, 'k2')
    const b1 = open(kitB, 'k1')
    const b2 = open(kitB, 'k2')
    const watchA = kitA.config.watch()
    await Promise.all([a1.ready, a2.ready, b1.ready, b2.ready, watchA.ready])
    await eventually(() => !a1.stale && !watchA.stale, 'reader A current')
    const seenA1 = transitions(a1)
    const seenWatch = transitions(watchA)

    const r44k1 = await put('k1', '44')
    const r44k2 = await put('k2', '44')
    await eventually(
      () => a1.current === 44 && a2.current === 44 && b1.current === 44 && b2.current === 44,
      '44',
    )
    t.is(a1.revision, r44k1)
    t.is(a2.revision, r44k2)
    t.is(a1.syncedRevision, r44k2)

    // A is cut off while both keys go good -> good -> unparsable, and etcd is compacted
    await a!.kill()
    await eventually(() => a1.stale && watchA.stale, 'reader A stale', 5_000)
    t.deepEqual(seenA1, ['stale'])
    const r69k2 = await put('k2', '69')
    await put('k2', 'not a number')
    const r69k1 = await put('k1', '69')
    // compacted at k1's good version: k1's history from there on is kept, k2's good version is gone
    await etcdctl([b!.endpoint], ['compaction', '--physical', r69k1])
    await put('k1', 'not a number')
    await eventually(() => b1.current === 69 && b2.current === 69, 'reader B follows every version')
    t.is(b1.revision, r69k1)
    t.is(b2.revision, r69k2)
    t.true(a1.stale)

    await a!.restart()
    await eventually(() => !a1.stale && !watchA.stale, 'reader A current again', 10_000)
    t.deepEqual(seenA1, ['stale', 'current'])
    t.deepEqual(seenWatch, ['stale', 'current'])
    // k1: A read the history back past the refused text and holds what B holds
    await eventually(() => a1.current === 69, 'reader A agrees on k1')
    t.is(a1.revision, b1.revision)
    // k2: the good version A missed was compacted away: A keeps the last good value it saw, and says so
    await sleep(300)
    t.is(a2.current, 44)
    t.is(a2.revision, r44k2)
    t.is(b2.current, 69)
    // a reader that starts now reads k1's history the same way
    await using kitC = new EtcdKit({ endpoints: [b!.endpoint], namespace, logger: silentLogger })
    const c1 = open(kitC, 'k1')
    await c1.ready
    await eventually(() => c1.current === 69, 'a fresh reader agrees on k1')
    t.is(c1.revision, r69k1)
  },
)

// A kit without a namespace: its key space is etcd's whole key space. etcd refuses an empty key ("key is
// not provided"), so the empty prefix must be read and watched as ["\0", "\0"), every key.
import { startEtcd } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'

test('without a namespace, the empty prefix lists and watches every key', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.close())
  const kit = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger })
  t.teardown(() => kit.close())
  await etcd.etcdctl(['put', 'a', '1'])
  await etcd.etcdctl(['put', 'zz/b', '2'])
  await etcd.etcdctl(['put', '\u00ff', '3'])

  const { kvs } = await kit.keyspace.list('')
  t.deepEqual(
    kvs.map((kv) => kit.keyspace.name(kv.key)),
    ['a', 'zz/b', '\u00ff'],
  )
  // the batched read (a txn of ranges) takes the same range
  const lists = await Promise.all(Array.from({ length: 40 }, () => kit.keyspace.list('')))
  t.true(lists.every((l) => l.kvs.length === 3))

  const seen: string[] = []
  const { key, range_end } = kit.keyspace.range('')
  const created = new Promise<void>((resolve, reject) => {
    const handle = kit.watchHub.watch(
      { key, rangeEnd: range_end, startRevision: 0n },
      {
        onEvents: (events) => seen.push(...events.map((e) => e.kv.key.toString())),
        onReset: (reason) => reject(new Error(reason)),
        onCreated: () => resolve(),
      },
    )
    t.teardown(() => handle.cancel())
  })
  await created
  await etcd.etcdctl(['put', 'm/new', '4'])
  const until = Date.now() + 5_000
  while (!seen.includes('m/new') && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
  t.deepEqual(seen, ['m/new'])
})

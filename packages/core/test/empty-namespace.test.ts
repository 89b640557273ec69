// A kit without a namespace: its key space is etcd's whole key space. etcd refuses an empty key ("key is
// not provided"), so the empty prefix must be read and watched as ["\0", "\0"), every key.
import { startEtcd } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { inspect } from '../src/integration/index.js'
import { kitInternals } from '../src/kit.js'

test('without a namespace, the empty prefix lists, batches, queues and watches every key', async (t) => {
  const etcd = await startEtcd()
  t.teardown(() => etcd.close())
  const kit = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger })
  t.teardown(() => kit.close())
  await etcd.etcdctl(['put', 'a', '1'])
  await etcd.etcdctl(['put', 'zz/b', '2'])
  await etcd.etcdctl(['put', '\u00ff', '3'])

  const inspector = inspect(kit)
  t.deepEqual(
    (await inspector.list('')).map((kv) => kv.key),
    ['a', 'zz/b', '\u00ff'],
  )
  // the batched read (a txn of ranges, once 16 reads are in flight) takes the same range
  const { keyspace } = kitInternals(kit)
  const lists = await Promise.all(Array.from({ length: 40 }, () => keyspace.list('')))
  t.true(lists.every((l) => l.kvs.length === 3))

  const held = await kit.lock('jobs/report').acquire()
  t.teardown(() => held.release())
  t.deepEqual(
    (await inspector.queues('')).map((q) => [q.name, q.kind]),
    [['jobs/report', 'lock']],
  )

  let changes = 0
  const watch = inspector.watchNamespace(() => changes++)
  t.teardown(() => watch.cancel())
  // a change anywhere is seen (the watch is created a moment after the call: put until one arrives)
  const until = Date.now() + 5_000
  for (let i = 0; changes === 0 && Date.now() < until; i++) {
    await etcd.etcdctl(['put', `m/${i}`, 'x'])
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.true(changes > 0)
})

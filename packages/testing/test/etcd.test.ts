import test from 'ava'
import { startEtcd } from '../src/index.js'

test('one member: put, restart keeps data, compact, wipe empties it', async (t) => {
  await using etcd = await startEtcd()
  t.regex(etcd.endpoints[0]!, /^127\.0\.0\.1:\d+$/)
  await etcd.etcdctl(['put', 'k', 'v1'])
  await etcd.etcdctl(['put', 'k', 'v2'])
  await etcd.restart()
  t.is((await etcd.etcdctl(['get', 'k', '--print-value-only'])).trim(), 'v2')
  const rev = await etcd.compact()
  t.true(rev >= 3)
  await t.throwsAsync(etcd.etcdctl(['get', 'k', `--rev=${rev - 1}`]), { message: /compacted/ })
  await etcd.wipe()
  t.is((await etcd.etcdctl(['get', 'k', '--print-value-only'])).trim(), '')
})

test('pause makes etcd unresponsive until resume; kill stops it', async (t) => {
  await using etcd = await startEtcd()
  const m = etcd.members[0]!
  etcd.pause()
  await t.throwsAsync(etcd.etcdctl(['get', 'k', '--command-timeout=500ms']))
  etcd.resume()
  await etcd.etcdctl(['put', 'k', 'v'])
  await m.kill()
  t.false(m.running)
  await m.restart()
  t.is((await etcd.etcdctl(['get', 'k', '--print-value-only'])).trim(), 'v')
})

test('three members: a leader, and the cluster survives losing it', async (t) => {
  await using etcd = await startEtcd({ members: 3 })
  t.is(etcd.endpoints.length, 3)
  const leader = await etcd.leader()
  await leader.stop()
  await etcd.etcdctl(['put', 'k', 'v'])
  const next = await etcd.leader()
  t.not(next.name, leader.name)
  await leader.restart()
  t.is((await etcd.etcdctl(['get', 'k', '--print-value-only'])).trim(), 'v')
})

test('a bad member count is rejected', async (t) => {
  await t.throwsAsync(startEtcd({ members: 2 as 1 }), {
    instanceOf: RangeError,
    message: /members must be 1 or 3, got 2/,
  })
})

test('a flag that is not an etcd flag is rejected before anything starts', async (t) => {
  await t.throwsAsync(startEtcd({ flags: ['max-txn-ops=8'] }), {
    instanceOf: RangeError,
    message: /flags must be etcd flags \("--name=value"\), got "max-txn-ops=8"/,
  })
  await t.throwsAsync(startEtcd({ flags: '--max-txn-ops=8' as unknown as string[] }), {
    instanceOf: RangeError,
    message: /flags must be an array of etcd flags, got "--max-txn-ops=8"/,
  })
})

test('a missing etcd binary is a clear error with the install command', async (t) => {
  const saved = process.env.ETCD_BIN
  process.env.ETCD_BIN = '/nonexistent/etcd'
  try {
    await t.throwsAsync(startEtcd(), {
      code: 'ETCDKIT_TESTING_BINARY_NOT_FOUND',
      message: /apt-get install -y etcd-server etcd-client/,
    })
  } finally {
    if (saved === undefined) delete process.env.ETCD_BIN
    else process.env.ETCD_BIN = saved
  }
})

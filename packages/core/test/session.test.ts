import { startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type SessionState, silentLogger } from '../src/index.js'
import { eventually, everyDialect } from './helpers.js'

test('etcd frozen past the TTL: suspect, then lost (the lease signal aborts), then a new lease and the registration again, in every dialect', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('session')
  await using k = new EtcdKit({ endpoints: etcd.endpoints, namespace, ttl: 3, logger: silentLogger })
  const states: SessionState[] = []
  k.session.on('state', (s) => states.push(s))
  const reg = await k.register({ service: 'svc', address: '127.0.0.1:1', dialects: everyDialect() })
  const oldKeys = [...reg.keys]
  const first = k.session.lease!
  t.is(k.session.state, 'alive')
  t.regex(first.hex, /^[0-9a-f]+$/)
  t.is(BigInt(`0x${first.hex}`).toString(), first.id)

  etcd.pause()
  const pausedAt = Date.now()
  await eventually(() => k.session.state === 'suspect', 'suspect', 3_000)
  await eventually(() => first.signal.aborted, 'the lease signal aborted', 4_000)
  const lostAfter = Date.now() - pausedAt
  t.true(lostAfter <= 3_500, `lost ${lostAfter} ms after the pause (ttl 3 s)`)
  etcd.resume()
  await eventually(
    () => k.session.state === 'alive' && k.session.lease?.id !== first.id,
    'a new lease',
    5_000,
  )
  t.true(states.join().startsWith('alive,suspect,lost,connecting,alive'), states.join())
  // every key of the registration now hangs off the new lease (go-zero's key names it: a new key)
  const leaseOf = async (key: string) =>
    /"lease":(\d+)/.exec(await etcd.etcdctl(['get', `${namespace}${key}`, '-w', 'json']))?.[1]
  await eventually(async () => {
    const leases = await Promise.all(reg.keys.map(leaseOf))
    return leases.every((l) => l === k.session.lease?.id)
  }, 'every key of the registration on the new lease')
  t.is(reg.keys.length, 6)
  const moved = oldKeys.filter((key) => !reg.keys.includes(key))
  t.deepEqual(moved, [`svc.rpc/${first.id}`], 'only the go-zero key changed with the lease')
  t.is(await leaseOf(moved[0]!), undefined, 'the old go-zero key went with the old lease')
  // and the old lease was revoked, not left to expire
  const leases = await etcd.etcdctl(['lease', 'list'])
  t.false(leases.includes(first.hex), leases)
})

test('close() revokes the lease, and the session refuses new waits', async (t) => {
  await using etcd = await startEtcd()
  const k = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger })
  await k.register({ service: 'svc', address: '127.0.0.1:1' })
  const lease = k.session.lease!
  await k.close()
  t.true(lease.signal.aborted)
  t.is(k.session.state, 'closed')
  t.false((await etcd.etcdctl(['lease', 'list'])).includes(lease.hex))
  t.is(await etcd.etcdctl(['get', '--prefix', 'services/']), '')
  await t.throwsAsync(k.session.leaseReady(), { code: 'ETCDKIT_CLOSED' })
})

import { startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type SessionState, silentLogger } from '../src/index.js'
import { eventually } from './helpers.js'

test('etcd frozen past the TTL: suspect, then lost (the lease signal aborts), then a new lease and the registration again', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('session')
  await using k = new EtcdKit({ endpoints: etcd.endpoints, namespace, ttl: 3, logger: silentLogger })
  const states: SessionState[] = []
  k.session.on('state', (s) => states.push(s))
  const reg = await k.register({ service: 'svc', address: '127.0.0.1:1' })
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
  // the registration now hangs off the new lease
  await eventually(async () => {
    const out = await etcd.etcdctl(['get', `${namespace}${reg.key}`, '-w', 'json'])
    return /"lease":(\d+)/.exec(out)?.[1] === k.session.lease?.id
  }, 'the registration on the new lease')
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

import { type EtcdCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type HeldLock, silentLogger } from '../src/index.js'
import { eventually } from './helpers.js'

// Locks across etcd's own failures: each test starts (and restarts or wipes) an etcd of its own.

/** The keys under `prefix`, as etcdctl lists them. */
async function keys(etcd: EtcdCluster, prefix: string): Promise<string[]> {
  return (await etcd.etcdctl(['get', '--prefix', '--keys-only', prefix])).split('\n').filter(Boolean)
}

test('etcd restarted: the holder keeps the lock, the waiter keeps its place and gets it on release', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('lock-restart')
  await using a = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  await using b = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  const held = await a.lock('/jobs/x').acquire()
  let got: HeldLock | undefined
  const waiting = b
    .lock('/jobs/x')
    .acquire()
    .then((h) => {
      got = h
      return h
    })
  await eventually(async () => (await keys(etcd, `${namespace}/jobs/x/`)).length === 2, 'both keys queued')
  await etcd.restart()
  // the lease survived the restart (etcd keeps leases across restarts): nothing was lost
  await eventually(() => a.session.state === 'alive', 'the holder session alive again')
  t.false(held.signal.aborted)
  t.true(held.held)
  t.is(got, undefined)
  t.true(await held.ifOwner({ put: { 'jobs/x/state': 'running' } }))
  await held.release()
  const next = await waiting
  t.true(next.fencingToken > held.fencingToken)
  await next.release()
})

test('etcd wiped: the holder is told it lost the lock and never re-takes it; the waiter queues again and gets it', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('lock-wipe')
  await using a = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  await using b = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  const held = await a.lock('/jobs/y').acquire()
  const waiting = b.lock('/jobs/y').acquire({ timeout: 15_000 })
  await eventually(async () => (await keys(etcd, `${namespace}/jobs/y/`)).length === 2, 'both keys queued')
  await etcd.wipe()
  const next = await waiting
  t.true(held.signal.aborted)
  t.is((held.signal.reason as { code?: string }).code, 'ETCDKIT_LOCK_LOST')
  t.false(held.held)
  // only the new holder's key exists: the old holder wrote nothing back
  t.deepEqual(await keys(etcd, `${namespace}/jobs/y/`), [`${namespace}${next.key}`])
  t.false(await held.ifOwner({ put: { 'jobs/y/state': 'stale' } }))
  await next.release()
  await held.release() // releasing a lost lock is harmless
})

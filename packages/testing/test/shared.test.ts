import test from 'ava'
import { sharedEtcd } from '../src/index.js'

test('sharedEtcd() is one etcd per process until it is closed', async (t) => {
  const [a, b] = await Promise.all([sharedEtcd(), sharedEtcd()])
  t.is(a, b)
  t.is(await a.etcdctl(['put', `shared-${process.pid}`, 'x']), 'OK\n')
  await a.close()
  const c = await sharedEtcd()
  t.not(c, a)
  // the runner's etcd again, or (no ETCD_ENDPOINTS) a new throwaway one in place of the stopped one
  const value = await c.etcdctl(['get', '--print-value-only', `shared-${process.pid}`])
  t.is(value, a.started ? '' : 'x\n')
  await c.close()
})

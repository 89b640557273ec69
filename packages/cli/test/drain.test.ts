// `etcdkit drain`: the request reaches the owning kit, which writes weight 0 itself; refused with the reason
// when the owner is not an etcdkit or is gone.
import { userInfo } from 'node:os'
import { eventually } from '@etcdkit/testing'
import test from 'ava'
import { scene } from './helpers.js'

test('etcdkit drain: the owner writes weight 0; --undo restores its weight; a non-etcdkit or gone owner is refused', async (t) => {
  const s = await scene(t, 'cli-drain')
  const owner = s.kit()
  const reg = await owner.register({ service: 'orders', address: '10.0.0.7:3000', metadata: { weight: 5 } })
  const view = s.kit().discover('orders')
  await view.ready
  const drained = await s.cli('drain', 'orders', '10.0.0.7:3000')
  t.is(drained.code, 0, drained.stderr)
  t.regex(drained.stdout, /drain requested: services\/orders\/10\.0\.0\.7:3000/)
  await eventually(() => view.instances[0]?.weight === 0, 'weight 0 written by the owner', 5_000)
  const [req] = await owner.client.getAll().prefix(`${s.namespace}_etcdkit/drain/`).keys()
  t.truthy(req)
  const record = JSON.parse((await owner.client.get(req!).string()) ?? '{}') as { writer: string }
  t.is(record.writer, `etcdkit-cli:${userInfo().username}`)
  const undone = await s.cli('drain', 'orders', '10.0.0.7:3000', '--undo')
  t.is(undone.code, 0, undone.stderr)
  await eventually(() => view.instances[0]?.weight === 5, 'the registered weight again', 5_000)

  // not an etcdkit: a key on a lease with no session record
  const lease = owner.client.lease(30)
  const id = await lease.grant()
  t.teardown(() => lease.revoke().catch(() => {}))
  await owner.client.put(`${s.namespace}services/legacy/10.0.0.50:80`).value('10.0.0.50:80').lease(id).exec()
  const foreign = await s.cli('drain', 'legacy', '10.0.0.50:80')
  t.is(foreign.code, 1)
  t.regex(foreign.stderr, /not an etcdkit/)
  // no lease: nobody owns it
  await owner.client.put(`${s.namespace}services/legacy/10.0.0.51:80`).value('10.0.0.51:80').exec()
  t.regex((await s.cli('drain', 'legacy', '10.0.0.51:80')).stderr, /no lease.*deregister/)
  // no such registration
  t.regex((await s.cli('drain', 'legacy', '10.0.0.52:80')).stderr, /no registration/)
  await reg.deregister()
})

// Drain requests: the owning kit honours a request on its lease by writing weight 0 itself, restores its
// weight when the request goes, keeps the drain across a new lease, and a role that may not read the
// drain prefix logs one warning and carries on.
import { startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type Logger, silentLogger } from '../src/index.js'
import { eventually, kit as newKit, within } from './helpers.js'

const request = (writer = 'etcdkit-console:alice') =>
  JSON.stringify({ writer, hostname: 'ops-laptop', pid: 1, at: new Date().toISOString() })

test('the owner writes weight 0 for a drain request on its lease, and its registered weight when the request goes', async (t) => {
  const owner = await newKit()
  const viewer = await newKit({ namespace: owner.namespace })
  t.teardown(() => Promise.all([owner.close(), viewer.close()]))
  const reg = await owner.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { weight: 3, zone: 'eu-1' },
  })
  const view = viewer.discover('orders')
  await view.ready
  const weight = () => view.instances[0]?.weight
  t.is(weight(), 3)
  const lease = owner.session.lease!
  const key = `${owner.namespace}_etcdkit/drain/${lease.hex}/${reg.key}`
  await owner.client.put(key).value(request()).lease(lease.id).exec()
  await eventually(() => weight() === 0, 'weight 0 written by the owner', 5_000)
  t.is(view.instances[0]!.metadata.zone, 'eu-1', 'the rest of the metadata is kept')
  // the registry does not fight the drain: a second later it is still 0
  await new Promise((r) => setTimeout(r, 1_000))
  t.is(weight(), 0)
  // a request for a key this kit does not own changes nothing
  await owner.client
    .put(`${owner.namespace}_etcdkit/drain/${lease.hex}/services/orders/10.9.9.9:1`)
    .value(request())
    .lease(lease.id)
    .exec()
  await owner.client.delete().key(key).exec()
  await eventually(() => weight() === 3, 'the registered weight again', 5_000)
})

test('a drain outlives a new lease: the owner carries the request over and writes weight 0 on the new lease', async (t) => {
  const owner = await newKit({ ttl: 2 })
  const viewer = await newKit({ namespace: owner.namespace })
  t.teardown(() => Promise.all([owner.close(), viewer.close()]))
  const reg = await owner.register({ service: 'orders', address: '10.0.0.8:3000' })
  const view = viewer.discover('orders')
  await view.ready
  const first = owner.session.lease!
  await owner.client
    .put(`${owner.namespace}_etcdkit/drain/${first.hex}/${reg.key}`)
    .value(request())
    .lease(first.id)
    .exec()
  await eventually(() => view.instances[0]?.weight === 0, 'drained', 5_000)
  // etcd forgets the lease (an operator's revoke, or an expiry during a partition): a new one is granted
  await owner.client.leaseClient.leaseRevoke({ ID: first.id })
  await eventually(
    () => owner.session.lease !== undefined && owner.session.lease.id !== first.id,
    'a new lease',
    10_000,
  )
  const second = owner.session.lease!
  await eventually(
    async () =>
      (await owner.client.get(`${owner.namespace}_etcdkit/drain/${second.hex}/${reg.key}`).exec()).kvs
        .length === 1,
    'the request carried over to the new lease',
    10_000,
  )
  await eventually(() => view.instances[0]?.weight === 0, 'still drained on the new lease', 10_000)
  const [kv] = (await owner.client.get(`${owner.namespace}${reg.key}`).exec()).kvs
  t.is(BigInt(kv!.lease).toString(16), second.hex)
})

test('a role without read permission on the drain prefix: one warning, registrations work as before', async (t) => {
  const etcd = await startEtcd({ auth: true })
  t.teardown(() => etcd.close())
  const ns = uniquePrefix('drain-role')
  const creds = await etcd.auth!.user('nodrain', [
    { prefix: `${ns}services/`, permission: 'readwrite' },
    { prefix: `${ns}sessions/`, permission: 'readwrite' },
  ])
  const warnings: string[] = []
  const logger: Logger = {
    ...silentLogger,
    warn: (_o: unknown, msg?: string) => void warnings.push(msg ?? ''),
  }
  const kit = new EtcdKit({ endpoints: etcd.endpoints, namespace: ns, auth: creds, logger, ttl: 3 })
  t.teardown(() => within(kit.close(), 15_000, 'close'))
  await kit.register({ service: 'orders', address: '10.0.0.9:3000', timeout: 20_000 })
  await kit.register({ service: 'billing', address: '10.0.0.9:3001', timeout: 20_000 })
  await eventually(() => warnings.some((w) => /drain requests/.test(w)), 'the warning', 10_000)
  await new Promise((r) => setTimeout(r, 500))
  t.is(warnings.filter((w) => /drain requests/.test(w)).length, 1, warnings.join('\n'))
  const view = kit.discover('orders')
  await within(view.ready, 10_000, 'discover')
  t.is(view.instances[0]?.weight, 1)
})

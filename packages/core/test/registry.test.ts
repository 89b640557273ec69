import { uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('a registration is the Go endpoints JSON under services/<service>/<address>, on the lease', async (t) => {
  const { endpoints, etcdctl } = await etcd()
  const ns = uniquePrefix('fmt')
  await using k = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
  const reg = await k.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0', weight: 2 },
  })
  t.is(reg.key, 'services/orders/10.0.0.7:3000')
  const out = await etcdctl(['get', '--prefix', `${ns}services/`])
  t.is(
    out,
    `${ns}services/orders/10.0.0.7:3000\n{"Op":0,"Addr":"10.0.0.7:3000","Metadata":{"version":"1.4.0","weight":2}}\n`,
  )
  // int64 lease ids lose precision in JSON.parse: read the digits
  const json = await etcdctl(['get', `${ns}services/orders/10.0.0.7:3000`, '-w', 'json'])
  t.is(/"lease":(\d+)/.exec(json)?.[1], k.session.lease?.id)
  await reg.deregister()
  t.is(await etcdctl(['get', '--prefix', `${ns}services/`]), '')
})

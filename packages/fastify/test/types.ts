// Type test, checked by `tsc -p tsconfig.json` (not run): typed use compiles, misuse does not.
import type { EtcdKit, Instance } from '@etcdkit/core'
import Fastify from 'fastify'
import { etcdDiscovery } from '../src/index.js'

export async function typed() {
  const app = Fastify()
  await app.register(etcdDiscovery, {
    service: 'orders',
    etcd: { endpoints: ['127.0.0.1:2379'], ttl: 10 },
    metadata: { version: '1.4.0', weight: 2, protocol: 'http' },
    advertise: 'orders-1.internal',
    drainDelay: 500,
  })
  const kit: EtcdKit = app.etcd
  app.get('/users', async function () {
    const users = this.etcd.discover('users')
    await users.ready
    const list: readonly Instance[] = users.instances
    return list.map((i) => i.address)
  })
  await app.register(async (child) => {
    child.etcd.discover('payments') // the decorator is visible in child scopes
  })
  return kit
}

export async function misuse() {
  const app = Fastify()
  // @ts-expect-error drainDelay is a number of milliseconds
  await app.register(etcdDiscovery, { service: 'orders', drainDelay: '1s' })
  // @ts-expect-error service is required
  await app.register(etcdDiscovery, { etcd: {} })
  // @ts-expect-error etcd.ttl is a number of seconds
  await app.register(etcdDiscovery, { service: 'orders', etcd: { ttl: '10' } })
  // @ts-expect-error metadata.protocol is http, https or grpc
  await app.register(etcdDiscovery, { service: 'orders', metadata: { protocol: 'tcp' } })
  // @ts-expect-error the kit is not a string
  const s: string = app.etcd
  return s
}

// The Fastify plugin, registered awaited, not awaited and in a child scope: in etcd once listen() resolves.
import { EtcdKit } from '@etcdkit/core'
import { etcdDiscovery } from '@etcdkit/fastify'
import Fastify from 'fastify'
import common from './common.cjs'

const { assert, endpoints, namespace, registered } = common
const { version } = (await import('fastify/package.json', { with: { type: 'json' } })).default
const styles = {
  awaited: async (app, opts) => {
    await app.register(etcdDiscovery, opts)
  },
  'not awaited': (app, opts) => {
    app.register(etcdDiscovery, opts)
  },
  'child scope': (app, opts) => {
    app.register(async (child) => {
      child.register(etcdDiscovery, opts)
    })
  },
}
const reader = new EtcdKit({ endpoints })
for (const [style, register] of Object.entries(styles)) {
  const ns = namespace('fastify')
  const app = Fastify()
  await register(app, { service: 'orders', etcd: { endpoints, namespace: ns }, drainDelay: 0 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address()
  assert.deepEqual(await registered(reader, ns, 'orders'), [`${ns}services/orders/127.0.0.1:${port}`], style)
  await app.close()
  assert.deepEqual(await registered(reader, ns, 'orders'), [], style)
  console.log(`fastify ${version}, ${style}: ok`)
}
await reader.close()

// One option makes a Fastify service visible in several registry dialects; closing takes them all out.
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import Fastify from 'fastify'
import { etcdDiscovery } from '../src/index.js'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

test('dialects: listen() writes the instance in each dialect; close() deletes every key first', async (t) => {
  const { endpoints, etcdctl } = await etcd()
  const namespace = uniquePrefix('fastify')
  const fastify = Fastify()
  fastify.get('/hello', async () => 'hi')
  await fastify.register(etcdDiscovery, {
    service: 'orders',
    etcd: { endpoints, namespace, logger: silentLogger },
    dialects: ['etcd', 'kratos', { name: 'go-micro', id: 'orders-1' }],
    drainDelay: 0,
  })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const address = `127.0.0.1:${(fastify.server.address() as { port: number }).port}`
  const keys = (await etcdctl(['get', '--prefix', namespace, '--keys-only'])).split('\n').filter(Boolean)
  t.deepEqual(
    keys.map((k) => k.slice(namespace.length)).filter((k) => !k.startsWith('sessions/')),
    ['/micro/registry/orders/orders-1', `/microservices/orders/${address}`, `services/orders/${address}`],
  )
  // a Kratos reader (HTTP) finds it at its http:// endpoint
  await using reader = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const res = await reader.service('orders', { dialect: 'kratos' }).request('/hello')
  t.is(await res.body.text(), 'hi')
  await fastify.close()
  t.is(await etcdctl(['get', '--prefix', namespace, '--keys-only']), '')
})

test('dialects: a bad dialect fails at register(), naming it', async (t) => {
  const fastify = Fastify()
  const err = await t.throwsAsync(
    fastify.register(etcdDiscovery, { service: 'orders', dialects: ['zookeeper' as 'etcd'] }).ready(),
  )
  t.regex(err!.message, /@etcdkit\/fastify.*"zookeeper"/)
  await fastify.close()
})

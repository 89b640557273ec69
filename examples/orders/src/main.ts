// The `orders` service on Fastify: registered in etcd while it listens, deregistered before it drains.
// Run: `pnpm --filter @etcdkit/example-orders start` (PORT, HOST, ETCD_ENDPOINTS are read from the
// environment; without ETCD_ENDPOINTS a throwaway etcd is started). Stop it with Ctrl-C.
import { etcdDiscovery } from '@etcdkit/fastify'
import { sharedEtcd } from '@etcdkit/testing'
import Fastify from 'fastify'

// ETCD_ENDPOINTS, or a throwaway etcd started here (and stopped on exit)
const etcd = await sharedEtcd()
const { endpoints } = etcd
if (etcd.started) console.log(`started a throwaway etcd at ${endpoints.join(', ')}`)

const app = Fastify({ logger: true })

await app.register(etcdDiscovery, {
  service: 'orders',
  etcd: { endpoints, ttl: 10 },
  metadata: { version: '1.4.0', protocol: 'http' },
  drainDelay: Number(process.env.DRAIN_DELAY ?? 1_000),
})

app.get('/orders/:id', async (request) => {
  const { id } = request.params as { id: string }
  return { id, status: 'shipped', servedBy: app.server.address() }
})

// fastify.etcd is the kit: discovery, locks and configuration of the whole process hang off it
const peers = app.etcd.discover('orders')
app.get('/instances', async () => peers.instances.map((i) => ({ address: i.address, ...i.metadata })))

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    if (stopping) return
    stopping = true
    await app.close() // deregister, wait drainDelay, drain, close the kit
    await etcd.close()
  })
}

try {
  // resolves once orders/<address> is in etcd; rejects (and closes) if etcd cannot be reached
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
  await peers.ready
  app.log.info({ instances: peers.instances.map((i) => i.address) }, 'orders instances registered in etcd')
} catch (err) {
  app.log.error(err)
  await etcd.close()
  process.exitCode = 1
}

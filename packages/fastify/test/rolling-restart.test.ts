import { EtcdKit, silentLogger } from '@etcdkit/core'
import { runLoad, sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import Fastify, { type FastifyInstance } from 'fastify'
import { etcdDiscovery } from '../src/index.js'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

test('rolling restart of 3 instances under a steady request loop: zero failed requests', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('fastify-rolling')
  const start = async (port: number) => {
    const app = Fastify()
    app.get('/work', async () => {
      await new Promise((r) => setTimeout(r, 2)) // a little work, so requests are in flight at close
      return { port: app.server.address() && (app.server.address() as { port: number }).port }
    })
    await app.register(etcdDiscovery, {
      service: 'orders',
      etcd: { endpoints, namespace, logger: silentLogger },
      drainDelay: 300,
    })
    await app.listen({ port, host: '127.0.0.1' })
    return app
  }
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 3; i++) apps.push(await start(0))
  const ports = apps.map((a) => (a.server.address() as { port: number }).port)

  await using client = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const orders = client.service('orders')
  await orders.ready
  t.is(orders.instances.length, 3)
  const loop = runLoad(async () => {
    const res = await orders.request('/work')
    const body = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${body}`)
    return `127.0.0.1:${(JSON.parse(body) as { port: number }).port}`
  })
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
  await pause(300)
  for (let i = 0; i < 3; i++) {
    const before = loop.stats.ok
    await apps[i]!.close()
    apps[i] = await start(ports[i]!)
    await pause(300)
    t.true(loop.stats.ok > before, `requests kept succeeding while instance ${i} restarted`)
  }
  const servedBefore = new Map(loop.stats.served)
  await pause(300)
  await loop.stop()
  for (const app of apps) await app.close()
  t.log(`${loop.stats.ok} requests through kit.service('orders'), ${loop.stats.failed} failed`)
  t.deepEqual(loop.stats.errors, [])
  t.is(loop.stats.failed, 0)
  t.true(loop.stats.ok > 100)
  for (const port of ports) {
    const address = `127.0.0.1:${port}`
    t.true(
      (loop.stats.served.get(address) ?? 0) > (servedBefore.get(address) ?? 0),
      `${address} serves again`,
    )
  }
})

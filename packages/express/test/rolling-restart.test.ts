import { EtcdKit, silentLogger } from '@etcdkit/core'
import { runLoad, sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import express from 'express'
import { type EtcdDiscovery, etcdDiscovery } from '../src/index.js'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

test('rolling restart of 3 instances under a steady request loop: zero failed requests', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('express-rolling')
  const app = express().get('/work', (req, res) => {
    // a little work, so requests are in flight at close
    setTimeout(() => res.json({ port: (req.socket.address() as { port: number }).port }), 2)
  })
  const start = async (port: number) => {
    const discovery = etcdDiscovery({
      service: 'users',
      etcd: { endpoints, namespace, logger: silentLogger },
      drainDelay: 300,
    })
    const server = await discovery.listen(app, port, '127.0.0.1')
    return { discovery, port: (server.address() as { port: number }).port }
  }
  const instances: { discovery: EtcdDiscovery; port: number }[] = []
  for (let i = 0; i < 3; i++) instances.push(await start(0))

  await using client = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const users = client.service('users')
  await users.ready
  t.is(users.instances.length, 3)
  const loop = runLoad(async () => {
    const res = await users.request('/work')
    const body = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${body}`)
    return `127.0.0.1:${(JSON.parse(body) as { port: number }).port}`
  })
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))
  await pause(300)
  for (let i = 0; i < 3; i++) {
    const before = loop.stats.ok
    await instances[i]!.discovery.close()
    instances[i] = await start(instances[i]!.port)
    await pause(300)
    t.true(loop.stats.ok > before, `requests kept succeeding while instance ${i} restarted`)
  }
  const servedBefore = new Map(loop.stats.served)
  await pause(300)
  await loop.stop()
  for (const { discovery } of instances) await discovery.close()
  t.log(`${loop.stats.ok} requests through kit.service('users'), ${loop.stats.failed} failed`)
  t.deepEqual(loop.stats.errors, [])
  t.is(loop.stats.failed, 0)
  t.true(loop.stats.ok > 100)
  for (const { port } of instances) {
    const address = `127.0.0.1:${port}`
    t.true(
      (loop.stats.served.get(address) ?? 0) > (servedBefore.get(address) ?? 0),
      `${address} serves again`,
    )
  }
})

import { EtcdKit, silentLogger } from '@etcdkit/core'
import { runLoad } from '@etcdkit/testing'
import { Controller, Get, type INestApplication, Req } from '@nestjs/common'
import test from 'ava'
import { type AdapterKind, createApp, etcd, etcdOptions } from './helpers.js'

test.after.always(async () => (await etcd()).close())

@Controller()
class WorkController {
  @Get('work')
  async work(@Req() req: { socket: { localPort?: number }; raw?: { socket: { localPort?: number } } }) {
    // a little work, so requests are in flight at close
    await new Promise((resolve) => setTimeout(resolve, 2))
    return { port: req.raw?.socket.localPort ?? req.socket.localPort }
  }
}

test('rolling restart of three Nest instances (Express, Fastify, Express) under load: zero failed requests', async (t) => {
  const options = await etcdOptions('nest-rolling')
  const kinds: AdapterKind[] = ['express', 'fastify', 'express']
  const start = async (adapter: AdapterKind, port: number) => {
    const app = await createApp({
      adapter,
      etcd: { ...options, logger: silentLogger, register: { service: 'users', drainDelay: 300 } },
      controllers: [WorkController],
    })
    const server = (await app.listen(port, '127.0.0.1')) as { address(): { port: number } }
    return { app, port: server.address().port }
  }
  const instances: { app: INestApplication; port: number }[] = []
  for (const kind of kinds) instances.push(await start(kind, 0))

  await using client = new EtcdKit({ ...options, logger: silentLogger })
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
    await instances[i]!.app.close()
    instances[i] = await start(kinds[i]!, instances[i]!.port)
    await pause(300)
    t.true(loop.stats.ok > before, `requests kept succeeding while instance ${i} restarted`)
  }
  const servedBefore = new Map(loop.stats.served)
  await pause(300)
  await loop.stop()
  for (const { app } of instances) await app.close()
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

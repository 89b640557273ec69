import { EtcdKit, silentLogger } from '@etcdkit/core'
import { type SharedEtcd, sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import express from 'express'
import { Agent, request } from 'undici'
import { type EtcdDiscovery, etcdDiscovery } from '../src/index.js'

let shared: Promise<SharedEtcd> | undefined
const etcd = () => (shared ??= sharedEtcd())
test.after.always(async () => (await etcd()).close())

const CONNECTION_FAILURES = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])

/**
 * A stand-in for `kit.service('users').request()` (not on main yet): round robin over the live
 * discovery view, a connection failure retried on the next instance; any other failure or a non-200
 * answer counts as a failed request.
 */
function requestLoop(kit: EtcdKit, service: string, workers: number) {
  const view = kit.discover(service)
  const agent = new Agent({ keepAliveTimeout: 10_000 })
  const stats = { ok: 0, failed: 0, retried: 0, errors: [] as string[], served: new Map<string, number>() }
  let next = 0
  let running = true
  const once = async () => {
    for (let attempt = 0; ; attempt++) {
      const list = view.instances
      const instance = list[next++ % Math.max(1, list.length)]
      if (!instance) throw new Error(`no instance of ${service}`)
      try {
        const res = await request(`http://${instance.address}/work`, { dispatcher: agent })
        const body = await res.body.text()
        if (res.statusCode !== 200)
          throw new Error(`HTTP ${res.statusCode} from ${instance.address}: ${body}`)
        stats.served.set(instance.address, (stats.served.get(instance.address) ?? 0) + 1)
        return
      } catch (err) {
        const code = (err as { code?: string }).code ?? ''
        if (!CONNECTION_FAILURES.has(code) || attempt >= 3) throw err
        stats.retried++
      }
    }
  }
  const worker = async () => {
    while (running) {
      try {
        await once()
        stats.ok++
      } catch (err) {
        stats.failed++
        stats.errors.push((err as Error).message)
      }
    }
  }
  const done = view.ready.then(() => Promise.all(Array.from({ length: workers }, worker)))
  return {
    view,
    stats,
    async stop() {
      running = false
      await done
      view.close()
      await agent.close()
    },
  }
}

test('rolling restart of 3 instances under a steady request loop: zero failed requests', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('express-rolling')
  const app = express().get('/work', (_req, res) => {
    setTimeout(() => res.json({ ok: true }), 2) // a little work, so requests are in flight at close
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
  const loop = requestLoop(client, 'users', 4)
  await loop.view.ready
  t.is(loop.view.instances.length, 3)
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
  t.log(
    `${loop.stats.ok} requests, ${loop.stats.failed} failed, ${loop.stats.retried} retried on another instance`,
  )
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

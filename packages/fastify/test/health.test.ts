// The opt-in health route (`healthRoute`): 200 / 503 with kit.health() as JSON, across an etcd pause
// longer than the session TTL, and while the registration is not written.
import { type HealthSnapshot, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, eventually, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'undici'
import { etcdDiscovery } from '../src/index.js'

const PASSWORD = 'hunter2-not-in-health'
let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd()
  // with auth on, the kit holds credentials: none may appear in the health JSON
  await etcd.etcdctl(['user', 'add', `root:${PASSWORD}`])
  await etcd.etcdctl(['auth', 'enable'])
})
test.after.always(() => etcd?.close())

async function app(options: { registerInBackground?: boolean } = {}) {
  const fastify = Fastify()
  await fastify.register(etcdDiscovery, {
    service: 'web',
    etcd: {
      endpoints: etcd.endpoints,
      namespace: uniquePrefix('health'),
      ttl: 2,
      auth: { username: 'root', password: PASSWORD },
      logger: silentLogger,
    },
    healthRoute: '/health/etcd',
    drainDelay: 0,
    ...options,
  })
  return fastify
}

async function health(
  fastify: FastifyInstance,
): Promise<{ status: number; text: string; body: HealthSnapshot }> {
  const { port } = fastify.server.address() as { port: number }
  const res = await request(`http://127.0.0.1:${port}/health/etcd`)
  const text = await res.body.text()
  return { status: res.statusCode, text, body: JSON.parse(text) as HealthSnapshot }
}

test.serial(
  '200 when registered and current, 503 during an etcd pause past the TTL, 200 after it',
  async (t) => {
    const fastify = await app()
    t.teardown(() => fastify.close())
    await fastify.listen({ port: 0, host: '127.0.0.1' })
    const view = fastify.etcd.discover('web')
    await view.ready
    await eventually(async () => (await health(fastify)).status === 200, 'ready')
    const ok = await health(fastify)
    t.true(ok.body.ready)
    t.like(ok.body.session, { state: 'alive', started: true })
    t.is(ok.body.registrations.length, 1)
    t.like(ok.body.registrations[0], { service: 'web', state: 'written' })
    t.like(ok.body.views[0], { kind: 'discovery', name: 'web', current: true, instances: 1 })
    t.true(fastify.etcd.health().ready)
    for (const text of [ok.text, JSON.stringify(fastify.etcd.health())]) {
      t.false(text.includes(PASSWORD), 'no password in the health JSON')
      t.false(/password|token|"auth"/i.test(text), 'no credential field')
    }

    etcd.pause()
    try {
      await eventually(() => !fastify.etcd.health().ready, 'not ready once the lease is lost', 15_000)
      const down = await health(fastify)
      t.is(down.status, 503)
      t.false(down.body.ready)
      t.true(down.body.reasons.length > 0)
      t.not(down.body.session.state, 'alive')
      t.false(down.text.includes(PASSWORD))
    } finally {
      etcd.resume()
    }
    await eventually(
      async () => (await health(fastify)).status === 200,
      'ready again after the resume',
      30_000,
    )
    t.like((await health(fastify)).body.registrations[0], { state: 'written' })
    t.true(fastify.etcd.health().ready)
  },
)

test.serial(
  '503 while the registration is not written (registerInBackground, etcd paused), then 200',
  async (t) => {
    etcd.pause()
    let resumed = false
    t.teardown(() => {
      if (!resumed) etcd.resume()
    })
    const fastify = await app({ registerInBackground: true })
    t.teardown(() => fastify.close())
    await fastify.listen({ port: 0, host: '127.0.0.1' })
    const down = await health(fastify)
    t.is(down.status, 503)
    t.is(down.body.registrations.length, 1)
    t.not(down.body.registrations[0]!.state, 'written')
    t.true(down.body.reasons.some((r) => r.includes('registration')))
    etcd.resume()
    resumed = true
    await eventually(async () => (await health(fastify)).status === 200, 'written once etcd answers', 30_000)
    t.like((await health(fastify)).body.registrations[0], { state: 'written' })
  },
)

// The opt-in health route (`healthRoute`) of the Express integration: 200 / 503 with kit.health() as JSON.
import { createServer } from 'node:http'
import { type HealthSnapshot, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, eventually, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import express from 'express'
import { request } from 'undici'
import { etcdDiscovery } from '../src/index.js'

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd()
})
test.after.always(() => etcd?.close())

const discoveryFor = (registerInBackground = false) =>
  etcdDiscovery({
    service: 'users',
    etcd: {
      endpoints: etcd.endpoints,
      namespace: uniquePrefix('express-health'),
      ttl: 2,
      logger: silentLogger,
    },
    healthRoute: '/health/etcd',
    drainDelay: 0,
    registerInBackground,
  })

async function get(port: number, path = '/health/etcd') {
  const res = await request(`http://127.0.0.1:${port}${path}`)
  const text = await res.body.text()
  return { status: res.statusCode, text }
}

const portOf = (server: { address(): unknown }) => (server.address() as { port: number }).port

test.serial(
  'listen(app): the route answers 200 when ready, 503 while the registration is not written',
  async (t) => {
    etcd.pause()
    let resumed = false
    t.teardown(() => {
      if (!resumed) etcd.resume()
    })
    const discovery = discoveryFor(true)
    t.teardown(() => discovery.close())
    const app = express()
    app.get('/hello', (_req, res) => {
      res.send('hi')
    })
    const server = await discovery.listen(app, 0, '127.0.0.1')
    const port = portOf(server)
    const down = await get(port)
    t.is(down.status, 503)
    const body = JSON.parse(down.text) as HealthSnapshot
    t.false(body.ready)
    t.not(body.registrations[0]?.state, 'written')
    t.is((await get(port, '/hello')).text, 'hi', 'other routes go to the app')
    etcd.resume()
    resumed = true
    await eventually(async () => (await get(port)).status === 200, 'ready once etcd answers', 30_000)
    t.like((JSON.parse((await get(port)).text) as HealthSnapshot).registrations[0], { state: 'written' })
  },
)

test.serial('attach(server) with the middleware: the route is served through it', async (t) => {
  const discovery = discoveryFor()
  t.teardown(() => discovery.close())
  const app = express()
  app.use(discovery.middleware)
  const server = createServer(app)
  server.listen(0, '127.0.0.1')
  await discovery.attach(server)
  await eventually(async () => (await get(portOf(server))).status === 200, 'ready')
  const ok = JSON.parse((await get(portOf(server))).text) as HealthSnapshot
  t.true(ok.ready)
  t.like(ok.registrations[0], { service: 'users', state: 'written' })
})

import { createServer } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import express from 'express'
import { Agent, request } from 'undici'
import { etcdDiscovery } from '../src/index.js'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

async function setup(drainDelay = 0) {
  const { endpoints, etcdctl } = await etcd()
  const namespace = uniquePrefix('express')
  const discovery = etcdDiscovery({
    service: 'users',
    etcd: { endpoints, namespace, logger: silentLogger },
    metadata: { version: '2.0.0' },
    drainDelay,
  })
  const keys = async () =>
    (await etcdctl(['get', '--prefix', '--keys-only', `${namespace}services/`])).split('\n').filter(Boolean)
  return { discovery, namespace, endpoints, etcdctl, keys }
}

const portOf = (server: { address(): unknown }) => (server.address() as { port: number }).port

test('listen(app) resolves once the Go-format key is written; middleware sets req.etcd', async (t) => {
  const { discovery, namespace, etcdctl } = await setup()
  const app = express()
  app.use(discovery.middleware)
  app.get('/kit', (req, res) => {
    res.json({ same: req.etcd === discovery.kit, service: 'users' })
  })
  const server = await discovery.listen(app, 0, '127.0.0.1')
  const address = `127.0.0.1:${portOf(server)}`
  t.is(discovery.address, address)
  t.is(
    await etcdctl(['get', '--prefix', `${namespace}services/`]),
    `${namespace}services/users/${address}\n{"Op":0,"Addr":"${address}","Metadata":{"version":"2.0.0"}}\n`,
  )
  const res = await request(`http://${address}/kit`)
  t.deepEqual(await res.body.json(), { same: true, service: 'users' })
  await discovery.close()
  t.is(await etcdctl(['get', '--prefix', `${namespace}services/`]), '')
  t.false(server.listening)
  t.true(discovery.kit.closed)
})

test('close(): another kit sees the instance go while the server still answers requests', async (t) => {
  const { discovery, namespace, endpoints } = await setup(1_000)
  const server = await discovery.listen(
    express().get('/hello', (_req, res) => void res.send('hi')),
    0,
    '127.0.0.1',
  )
  const url = `http://127.0.0.1:${portOf(server)}/hello`
  await using watcher = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const view = watcher.discover('users')
  await view.ready
  t.is(view.instances.length, 1)
  const answered = new Promise<number>((resolve, reject) => {
    view.on('change', (list) => {
      if (list.length === 0)
        request(url).then(async (res) => {
          await res.body.dump()
          resolve(res.statusCode)
        }, reject)
    })
  })
  const closed = discovery.close()
  t.is(await answered, 200)
  await closed
  await t.throwsAsync(request(url), { code: 'ECONNREFUSED' })
})

test('a bare node:http server works, and attach() to a listening server registers at once', async (t) => {
  const { discovery, keys } = await setup()
  const server = createServer((_req, res) => res.end('ok'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.is(await discovery.attach(server), server)
  t.deepEqual(await keys(), [`${discovery.kit.namespace}services/users/127.0.0.1:${portOf(server)}`])
  const res = await request(`http://127.0.0.1:${portOf(server)}/`)
  t.is(await res.body.text(), 'ok')
  await discovery.close()
  t.false(server.listening)
  t.deepEqual(await keys(), [])
})

test('attach() to a server not yet listening registers on its listening event', async (t) => {
  const { discovery, keys } = await setup()
  const server = createServer((_req, res) => res.end('ok'))
  let registered = false
  const attached = discovery.attach(server).then(() => {
    registered = true
  })
  await new Promise((r) => setTimeout(r, 200))
  t.false(registered)
  t.deepEqual(await keys(), [])
  server.listen(0, '127.0.0.1')
  await attached
  t.deepEqual(await keys(), [`${discovery.kit.namespace}services/users/127.0.0.1:${portOf(server)}`])
  await t.throwsAsync(discovery.attach(createServer()), { message: /already attached to a server/ })
  await discovery.close()
  t.deepEqual(await keys(), [])
})

test('a listen error (port in use) rejects with that error and writes nothing to etcd', async (t) => {
  const { discovery, namespace, etcdctl } = await setup()
  const blocker = createNetServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  await t.throwsAsync(discovery.listen(express(), portOf(blocker), '127.0.0.1'), { code: 'EADDRINUSE' })
  t.is(await etcdctl(['get', '--prefix', `${namespace}services/`]), '')
  t.is(discovery.kit.session.state, 'connecting', 'not even a lease was granted')
  // nothing was registered, so the same discovery can listen elsewhere
  const server = await discovery.listen(express(), 0, '127.0.0.1')
  t.not(await etcdctl(['get', '--prefix', `${namespace}services/`]), '')
  await discovery.close()
  t.false(server.listening)
})

test('etcd unreachable: listen rejects with ETCDKIT_ETCD_UNAVAILABLE and closes the server', async (t) => {
  const blocker = createNetServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  const deadPort = portOf(blocker)
  await new Promise((resolve) => blocker.close(resolve))
  const discovery = etcdDiscovery({
    service: 'users',
    etcd: { endpoints: [`127.0.0.1:${deadPort}`], logger: silentLogger },
    registerTimeout: 500,
  })
  const err = await t.throwsAsync(discovery.listen(express(), 0, '127.0.0.1'))
  t.is((err as { code?: string }).code, 'ETCDKIT_ETCD_UNAVAILABLE')
  t.regex(err.message, /@etcdkit\/express: could not register "127\.0\.0\.1:\d+" as "users"/)
  t.false(discovery.server?.listening)
  t.true(discovery.kit.closed)
})

test('close() lets an in-flight keep-alive request finish and does not wait for idle sockets', async (t) => {
  const { discovery } = await setup()
  let served = 0
  let arrived!: () => void
  const inHandler = new Promise<void>((r) => {
    arrived = r
  })
  const app = express().get('/slow', (_req, res) => {
    if (++served === 2) arrived()
    setTimeout(() => res.send('done'), 300)
  })
  const server = await discovery.listen(app, 0, '127.0.0.1')
  server.keepAliveTimeout = 60_000
  const agent = new Agent({ keepAliveTimeout: 60_000 })
  t.teardown(() => agent.close())
  const base = `http://127.0.0.1:${portOf(server)}`
  await (await request(`${base}/slow`, { dispatcher: agent })).body.text() // leaves an idle keep-alive socket
  const inflight = request(`${base}/slow`, { dispatcher: agent })
  await inHandler // close while the request is being served
  const closed = discovery.close()
  const res = await inflight
  t.is(res.statusCode, 200)
  t.is(await res.body.text(), 'done')
  const outcome = await Promise.race([
    closed.then(() => 'closed'),
    new Promise((r) => setTimeout(() => r('still open after 5 s'), 5_000)),
  ])
  t.is(outcome, 'closed')
})

test('signals: the first signal closes once; the default action is restored only if nobody else listens', async (t) => {
  const { endpoints } = await etcd()
  const discovery = etcdDiscovery({
    service: 'users',
    etcd: { endpoints, namespace: uniquePrefix('express-sig'), logger: silentLogger },
    drainDelay: 0,
    signals: ['SIGUSR2'],
  })
  const seen: string[] = []
  // another listener: so etcdkit does not re-raise SIGUSR2 at the test process
  const other = () => seen.push('app')
  process.on('SIGUSR2', other)
  t.teardown(() => void process.off('SIGUSR2', other))
  const server = await discovery.listen(express(), 0, '127.0.0.1')
  t.is(process.listenerCount('SIGUSR2'), 2)
  process.emit('SIGUSR2', 'SIGUSR2')
  process.emit('SIGUSR2', 'SIGUSR2')
  await discovery.close()
  t.false(server.listening)
  t.true(discovery.kit.closed)
  t.deepEqual(seen, ['app', 'app'])
  await new Promise((r) => setImmediate(r))
  t.is(process.listenerCount('SIGUSR2'), 1, 'its handler is removed after closing')
  t.throws(() => etcdDiscovery({ service: 'users', signals: ['TERM' as NodeJS.Signals] }), {
    message: /invalid signals \["TERM"\]/,
  })
})

test('a server on ::1 is registered as [::1]:port, and reachable at that address', async (t) => {
  const { discovery, keys } = await setup()
  const server = await discovery.listen(
    express().get('/', (_req, res) => void res.send('v6')),
    0,
    '::1',
  )
  const address = `[::1]:${portOf(server)}`
  t.is(discovery.address, address)
  t.deepEqual(await keys(), [`${discovery.kit.namespace}services/users/${address}`])
  const res = await request(`http://${address}/`)
  t.is(await res.body.text(), 'v6')
  await discovery.close()
})

test('close() (and so signals: true) finishes while a request never ends: after closeGrace its connection is closed', async (t) => {
  const { endpoints } = await etcd()
  const discovery = etcdDiscovery({
    service: 'hang',
    etcd: { endpoints, namespace: uniquePrefix('express-grace'), logger: silentLogger },
    drainDelay: 0,
    closeGrace: 300,
  })
  const server = await discovery.listen(
    (_req, res) => {
      res.writeHead(200)
      res.write('never ends') // and never res.end()
    },
    0,
    '127.0.0.1',
  )
  const res = await request(`http://127.0.0.1:${portOf(server)}/`)
  const body = res.body.text().catch((err: unknown) => err)
  const start = Date.now()
  await discovery.close()
  t.true(Date.now() - start < 5_000, `${Date.now() - start} ms`)
  t.false(server.listening)
  t.true((await body) instanceof Error, 'the hanging response was cut')
})

test('the caller deadline header: req.callerDeadline aborts when the caller gives up; none left: 504', async (t) => {
  const { discovery } = await setup()
  t.teardown(() => discovery.close())
  const app = express()
  app.use(discovery.middleware)
  app.get('/deadline', (req, res) => {
    const signal = req.callerDeadline
    if (signal === undefined) return void res.json({ signal: false })
    signal.addEventListener('abort', () => res.json({ signal: true, aborted: signal.aborted }), {
      once: true,
    })
  })
  const server = await discovery.listen(app, 0, '127.0.0.1')
  const url = `http://127.0.0.1:${portOf(server)}/deadline`
  t.deepEqual(await (await request(url)).body.json(), { signal: false })
  const started = performance.now()
  const res = await request(url, { headers: { 'etcdkit-timeout-ms': '100' } })
  t.deepEqual(await res.body.json(), { signal: true, aborted: true })
  t.true(performance.now() - started >= 95)
  const shed = await request(url, { headers: { 'etcdkit-timeout-ms': '0' } })
  t.is(shed.statusCode, 504)
  await shed.body.dump()
})

import { createServer } from 'node:net'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { hostAddress } from '@etcdkit/core/integration'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import Fastify from 'fastify'
import { Agent, request } from 'undici'
import { etcdDiscovery } from '../src/index.js'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

async function app(options: { drainDelay?: number; advertise?: string } = {}) {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('fastify')
  const fastify = Fastify()
  fastify.get('/hello', async () => ({ hello: 'world' }))
  await fastify.register(etcdDiscovery, {
    service: 'orders',
    etcd: { endpoints, namespace, logger: silentLogger },
    metadata: { version: '1.0.0' },
    drainDelay: 0,
    ...options,
  })
  return { fastify, namespace, endpoints }
}

const portOf = (fastify: { server: { address(): unknown } }) =>
  (fastify.server.address() as { port: number }).port

test('listen() resolves once the Go-format key with the advertised address is in etcd', async (t) => {
  const { fastify, namespace } = await app()
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const address = `127.0.0.1:${portOf(fastify)}`
  // read right after listen resolves, with etcdctl: nothing may be pending
  const out = await (await etcd()).etcdctl(['get', '--prefix', `${namespace}services/orders/`])
  t.is(
    out,
    `${namespace}services/orders/${address}\n{"Op":0,"Addr":"${address}","Metadata":{"version":"1.0.0"}}\n`,
  )
  await fastify.close()
  t.is(await (await etcd()).etcdctl(['get', '--prefix', `${namespace}services/`]), '')
})

test('a server bound to 0.0.0.0 is advertised at the host address; advertise overrides it', async (t) => {
  const { fastify, namespace } = await app()
  await fastify.listen({ port: 0, host: '0.0.0.0' })
  const expected = `${hostAddress(false) ?? '127.0.0.1'}:${portOf(fastify)}`
  t.is(fastify.etcd.session.state, 'alive')
  const keys = await (await etcd()).etcdctl(['get', '--prefix', '--keys-only', `${namespace}services/`])
  t.is(keys.trim(), `${namespace}services/orders/${expected}`)
  await fastify.close()

  const other = await app({ advertise: 'orders-1.internal' })
  await other.fastify.listen({ port: 0, host: '127.0.0.1' })
  const keys2 = await (await etcd()).etcdctl([
    'get',
    '--prefix',
    '--keys-only',
    `${other.namespace}services/`,
  ])
  t.is(keys2.trim(), `${other.namespace}services/orders/orders-1.internal:${portOf(other.fastify)}`)
  await other.fastify.close()
})

test('close(): another kit sees the instance go while the server still answers requests', async (t) => {
  const { fastify, namespace, endpoints } = await app({ drainDelay: 1_000 })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${portOf(fastify)}/hello`
  await using watcher = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const view = watcher.discover('orders')
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
  const closed = fastify.close()
  t.is(await answered, 200, 'the server still served normally after the instance left the registry')
  await closed
  await t.throwsAsync(request(url), { code: 'ECONNREFUSED' })
})

test('close() lets an in-flight keep-alive request finish and does not wait for its socket', async (t) => {
  const { fastify } = await app()
  let arrived!: () => void
  const inHandler = new Promise<void>((r) => {
    arrived = r
  })
  fastify.get('/slow', async () => {
    arrived()
    await new Promise((r) => setTimeout(r, 300))
    return 'done'
  })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const agent = new Agent({ keepAliveTimeout: 60_000 })
  t.teardown(() => agent.close())
  const base = `http://127.0.0.1:${portOf(fastify)}`
  await (await request(`${base}/hello`, { dispatcher: agent })).body.text()
  const inflight = request(`${base}/slow`, { dispatcher: agent })
  await inHandler // close while the request is being served (a request arriving after close gets 503)
  const closed = fastify.close()
  const res = await inflight
  t.is(res.statusCode, 200)
  t.is(await res.body.text(), 'done')
  // Fastify's keepAliveTimeout is 72 s: without reaping, close would wait for that socket
  const outcome = await Promise.race([
    closed.then(() => 'closed'),
    new Promise((r) => setTimeout(() => r('still open after 5 s'), 5_000)),
  ])
  t.is(outcome, 'closed')
})

test('etcd unreachable at listen(): listen rejects with ETCDKIT_ETCD_UNAVAILABLE and the server is closed', async (t) => {
  const port = await closedPort()
  const fastify = Fastify()
  await fastify.register(etcdDiscovery, {
    service: 'orders',
    etcd: { endpoints: [`127.0.0.1:${port}`], logger: silentLogger },
    registerTimeout: 500,
  })
  const err = await t.throwsAsync(fastify.listen({ port: 0, host: '127.0.0.1' }))
  t.is((err as { code?: string }).code, 'ETCDKIT_ETCD_UNAVAILABLE')
  t.regex(
    err.message,
    /@etcdkit\/fastify: could not register "127\.0\.0\.1:\d+" as "orders": no etcd lease after 500 ms/,
  )
  t.false(fastify.server.listening)
  t.true(fastify.etcd.closed, 'the kit the plugin created is closed too')
})

test('registerInBackground: listen resolves without etcd and registers once etcd answers', async (t) => {
  const { startEtcd } = await import('@etcdkit/testing')
  const own = await startEtcd()
  t.teardown(() => own.close())
  await own.stop()
  const fastify = Fastify()
  await fastify.register(etcdDiscovery, {
    service: 'orders',
    etcd: { endpoints: own.endpoints, logger: silentLogger },
    registerTimeout: 300,
    registerInBackground: true,
    drainDelay: 0,
  })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const res = await fastify.inject('/missing')
  t.is(res.statusCode, 404, 'serving without etcd')
  await own.restart()
  const key = `services/orders/127.0.0.1:${portOf(fastify)}`
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline && (await own.etcdctl(['get', key, '--keys-only'])).trim() !== key)
    await new Promise((r) => setTimeout(r, 100))
  t.is((await own.etcdctl(['get', key, '--keys-only'])).trim(), key)
  await fastify.close()
  t.is(await own.etcdctl(['get', '--prefix', 'services/']), '')
})

test('inject() without listen() registers nothing', async (t) => {
  const { fastify, namespace } = await app()
  const res = await fastify.inject('/hello')
  t.deepEqual(res.json(), { hello: 'world' })
  t.is(await (await etcd()).etcdctl(['get', '--prefix', `${namespace}services/`]), '')
  t.is(fastify.etcd.session.state, 'connecting', 'no lease was even granted')
  await fastify.close()
  t.true(fastify.etcd.closed)
})

test('registering twice is a clear error, in the same scope and in sibling scopes', async (t) => {
  const { endpoints } = await etcd()
  const opts = { service: 'orders', etcd: { endpoints, logger: silentLogger } }
  const same = Fastify()
  same.register(etcdDiscovery, opts)
  same.register(etcdDiscovery, opts)
  await t.throwsAsync(same.ready(), { message: /@etcdkit\/fastify is already registered on this server/ })
  await same.close()

  const siblings = Fastify()
  siblings.register(async (a) => a.register(etcdDiscovery, opts))
  siblings.register(async (b) => b.register(etcdDiscovery, opts))
  await t.throwsAsync(siblings.ready(), { code: 'ETCDKIT_INVALID_ARGUMENT' })
  await siblings.close()
})

test('bad options fail at register with the bad value named', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ service: 'orders/v1' }, /invalid @etcdkit\/fastify service name "orders\/v1"/],
    [{ service: 'orders', drainDelay: -1 }, /invalid @etcdkit\/fastify drainDelay -1/],
    [{ service: 'orders', advertise: 'a:b:c' }, /invalid advertise "a:b:c"/],
    [{ service: 'orders', etcd: {}, kit: {} }, /give either etcd .* or kit, not both/],
    [{ service: 'orders', kit: {} }, /invalid kit \{\}: expected an EtcdKit/],
    [{ service: 'orders', metadata: { weight: -1 } }, /invalid metadata.weight -1/],
    [{ service: 'orders', drain: 5 }, /unknown option "drain"/],
    [{ service: 'orders', closeTimeout: -1 }, /invalid @etcdkit\/fastify closeTimeout -1/],
    [
      { service: 'orders', drainDelay: 2_000, closeTimeout: 1_000 },
      /closeTimeout 1000: expected at least drainDelay/,
    ],
  ]
  for (const [options, message] of cases) {
    const fastify = Fastify()
    // @ts-expect-error deliberately wrong options
    fastify.register(etcdDiscovery, options)
    await t.throwsAsync(fastify.ready(), { code: 'ETCDKIT_INVALID_ARGUMENT', message })
  }
})

test('a kit passed in is used as fastify.etcd and left open on close', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('fastify-kit')
  await using kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const fastify = Fastify()
  await fastify.register(etcdDiscovery, { service: 'orders', kit, drainDelay: 0 })
  t.is(fastify.etcd, kit)
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const view = kit.discover('orders')
  await view.ready
  t.deepEqual(
    view.instances.map((i) => i.address),
    [`127.0.0.1:${portOf(fastify)}`],
  )
  await fastify.close()
  t.false(kit.closed)
  t.is(await (await etcd()).etcdctl(['get', '--prefix', `${namespace}services/`]), '')
})

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('the kit the plugin creates knows its service: config/orders/ keys override shared ones', async (t) => {
  const { fastify, namespace } = await app()
  await fastify.ready()
  t.is(fastify.etcd.serviceName, 'orders')
  const limit = fastify.etcd.config.value('limit', { parse: Number, default: 1 })
  await limit.ready
  const { etcdctl } = await etcd()
  await etcdctl(['put', `${namespace}config/limit`, '10'])
  await etcdctl(['put', `${namespace}config/orders/limit`, '20'])
  for (let i = 0; i < 200 && limit.current !== 20; i++) await new Promise((r) => setTimeout(r, 10))
  t.is(limit.current, 20)
  await fastify.close()
})

test('the caller deadline header: request.callerDeadline aborts when the caller gives up; none left: 504', async (t) => {
  const { fastify } = await app()
  t.teardown(() => fastify.close())
  fastify.get('/deadline', async (request) => {
    const signal = request.callerDeadline
    if (signal === undefined) return { signal: false }
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    return { signal: true, aborted: signal.aborted }
  })
  t.deepEqual((await fastify.inject('/deadline')).json(), { signal: false })
  const started = performance.now()
  const res = await fastify.inject({ url: '/deadline', headers: { 'etcdkit-timeout-ms': '100' } })
  t.deepEqual(res.json(), { signal: true, aborted: true })
  t.true(performance.now() - started >= 95)
  const shed = await fastify.inject({ url: '/deadline', headers: { 'etcdkit-timeout-ms': '0' } })
  t.is(shed.statusCode, 504)
  // not a whole number of ms: ignored
  t.deepEqual((await fastify.inject({ url: '/deadline', headers: { 'etcdkit-timeout-ms': '1e3' } })).json(), {
    signal: false,
  })
})

test('close() with a request that never ends: its connection is destroyed once closeTimeout has passed', async (t) => {
  const { endpoints } = await etcd()
  const fastify = Fastify()
  fastify.get('/hang', (_req, reply) => {
    reply.raw.writeHead(200)
    reply.raw.write('started') // and never ends
  })
  await fastify.register(etcdDiscovery, {
    service: 'hang',
    etcd: { endpoints, namespace: uniquePrefix('fastify-hang'), logger: silentLogger },
    drainDelay: 100,
    closeTimeout: 800,
  })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const agent = new Agent()
  t.teardown(() => agent.close())
  const res = await request(`http://127.0.0.1:${portOf(fastify)}/hang`, { dispatcher: agent })
  const body = res.body.text().catch((err: unknown) => err)
  const started = Date.now()
  const outcome = await Promise.race([
    fastify.close().then(() => 'closed'),
    new Promise((r) => setTimeout(() => r('still closing after 6 s'), 6_000)),
  ])
  const took = Date.now() - started
  t.is(outcome, 'closed')
  t.true(took >= 700, `closed after ${took} ms, before closeTimeout`)
  t.true((await body) instanceof Error, 'the hung response was cut')
})

import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import test from 'ava'
import { eventually, proxyCluster, startEtcd, startProxy } from '../src/index.js'

/** A TCP echo server on loopback: what the proxy forwards to when no etcd behaviour is under test. */
async function echoServer(): Promise<{ endpoint: string; server: Server } & AsyncDisposable> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
    s.pipe(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** A client socket that collects what it receives. */
async function client(endpoint: string) {
  const [host, port] = endpoint.split(':')
  const socket = connect({ host: host!, port: Number(port) })
  let received = ''
  let error: (Error & { code?: string }) | undefined
  let closed = false
  socket.setEncoding('utf8')
  socket.on('data', (d: string) => {
    received += d
  })
  socket.on('error', (err) => {
    error = err
  })
  socket.on('close', () => {
    closed = true
  })
  await once(socket, 'connect')
  return {
    socket,
    get received() {
      return received
    },
    get error() {
      return error
    },
    get closed() {
      return closed
    },
  }
}

test('pass forwards both ways; latency delays each direction and keeps the order', async (t) => {
  await using echo = await echoServer()
  await using proxy = await startProxy(echo.endpoint)
  t.regex(proxy.endpoint, /^127\.0\.0\.1:\d+$/)
  t.is(proxy.target, echo.endpoint)
  const c = await client(proxy.endpoint)
  c.socket.write('hello')
  await eventually(() => c.received === 'hello', 'the echo')
  proxy.latency(100)
  const start = Date.now()
  c.socket.write('a')
  await eventually(() => c.received === 'helloa', 'the delayed echo')
  t.true(Date.now() - start >= 190, `round trip ${Date.now() - start} ms: 100 ms each way`)
  c.socket.write('b')
  await sleep(30) // 'b' reaches the proxy and waits out its latency
  proxy.latency(0) // lowered mid-stream: 'c' must not overtake 'b'
  c.socket.write('c')
  await eventually(() => c.received.length === 'helloabc'.length, 'the last echoes')
  t.is(c.received, 'helloabc')
  t.is(proxy.connections, 1)
  t.is(proxy.accepted, 1)
  t.is(proxy.bytesToTarget, 'helloabc'.length)
  t.is(proxy.bytesFromTarget, 'helloabc'.length)
})

test('stall holds bytes both ways and flushes them in order on pass', async (t) => {
  await using echo = await echoServer()
  await using proxy = await startProxy(echo.endpoint)
  const c = await client(proxy.endpoint)
  proxy.stall()
  t.is(proxy.mode, 'stall')
  c.socket.write('one ')
  c.socket.write('two')
  const late = await client(proxy.endpoint) // accepted while stalled, held too
  late.socket.write('late')
  await sleep(200)
  t.is(c.received, '')
  t.is(late.received, '')
  proxy.pass()
  await eventually(() => c.received === 'one two' && late.received === 'late', 'the held bytes')
  t.is(c.error, undefined)
})

test('blackhole drops bytes but keeps sockets open; its connections are reset when it ends', async (t) => {
  await using echo = await echoServer()
  await using proxy = await startProxy(echo.endpoint)
  const c = await client(proxy.endpoint)
  proxy.blackhole()
  c.socket.write('lost')
  const during = await client(proxy.endpoint) // accepted, silent
  during.socket.write('also lost')
  await sleep(200)
  t.is(c.received, '')
  t.is(during.received, '')
  t.false(c.closed)
  t.false(during.closed)
  proxy.pass()
  await eventually(() => c.closed && during.closed, 'the gapped connections to be reset')
  const after = await client(proxy.endpoint)
  after.socket.write('back')
  await eventually(() => after.received === 'back', 'a new connection to work')
})

test('blackhole-new keeps open connections working and never forwards new ones', async (t) => {
  await using echo = await echoServer()
  await using proxy = await startProxy(echo.endpoint)
  const old = await client(proxy.endpoint)
  proxy.blackholeNew()
  const fresh = await client(proxy.endpoint)
  fresh.socket.write('nowhere')
  old.socket.write('still')
  await eventually(() => old.received === 'still', 'the open connection to keep working')
  await sleep(200)
  t.is(fresh.received, '')
  t.false(fresh.closed)
  proxy.pass()
  await eventually(() => fresh.closed, 'the never-forwarded connection to be reset')
  t.false(old.closed)
})

test('reset destroys every connection with an RST; close is idempotent', async (t) => {
  await using echo = await echoServer()
  const proxy = await startProxy(echo.endpoint)
  const c = await client(proxy.endpoint)
  proxy.reset()
  await eventually(() => c.closed, 'the reset')
  t.is(c.error?.code, 'ECONNRESET')
  t.is(proxy.mode, 'pass')
  const again = await client(proxy.endpoint)
  again.socket.write('x')
  await eventually(() => again.received === 'x', 'a new connection after reset')
  await Promise.all([proxy.close(), proxy.close()])
  await proxy.close()
  await eventually(() => again.closed, 'close to end connections')
})

test('bad arguments are RangeErrors naming the value', async (t) => {
  await t.throwsAsync(startProxy('nowhere'), { instanceOf: RangeError, message: /"nowhere"/ })
  await using proxy = await startProxy('127.0.0.1:1')
  t.throws(() => proxy.latency(-1), { instanceOf: RangeError, message: /-1/ })
  t.throws(() => proxy.setMode('off' as 'pass'), { instanceOf: RangeError, message: /"off"/ })
})

test('proxyCluster: one proxy per member of a 3-member cluster; one silenced member, the others answer', async (t) => {
  await using etcd = await startEtcd({ members: 3 })
  await using proxied = await proxyCluster(etcd)
  t.is(proxied.endpoints.length, 3)
  t.is(proxied.proxyOf(etcd.endpoints[1]!), proxied.proxies[1]!)
  const health = (endpoint: string) =>
    fetch(`http://${endpoint}/health`, { signal: AbortSignal.timeout(1_000) }).then(
      (r) => r.ok,
      () => false,
    )
  t.deepEqual(await Promise.all(proxied.endpoints.map(health)), [true, true, true])
  proxied.proxies[0]!.blackhole()
  t.deepEqual(await Promise.all(proxied.endpoints.map(health)), [false, true, true])
  proxied.proxies[0]!.pass()
  await eventually(() => health(proxied.endpoints[0]!), 'member 0 to answer again')
  await proxied.close()
  await proxied.close()
})

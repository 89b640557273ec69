// Bad input at the API and hostile data in the registry (issue 13, defects 5 to 12): refused at the call
// with a coded error naming the value, never echoing secrets, never half-applied.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import test from 'ava'
import { EtcdKit, type EtcdKitOptions, type InvalidEntry, type Logger, silentLogger } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

const invalid = { code: 'ETCDKIT_INVALID_ARGUMENT' }

async function httpServer() {
  const server = createServer((_req, res) => res.end('ok'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }
}

test('registry values: every Addr goes through the address check; invalid ones are skipped, reported once, never picked', async (t) => {
  const { server, address } = await httpServer()
  t.teardown(() => server.close())
  await using k = await kit()
  const write = (addr: string, value: string) =>
    k.client.put(`${k.namespace}services/hostile/${addr}`).value(value)
  const port = address.split(':')[1]
  await write('a', JSON.stringify({ Op: 0, Addr: '[::1]:99999' }))
  await write('b', JSON.stringify({ Op: 0, Addr: `127.0.0.1:1@${address}` }))
  await write('c', JSON.stringify({ Op: 0, Addr: `127.0.0.1:${String.fromCharCode(0xff10 + 8)}0` }))
  await write('d', JSON.stringify({ Op: 0, Addr: address, Metadata: { weight: 1e308, __proto__x: 1 } }))
  await write('e', `{"Op":0,"Addr":"127.0.0.1:${port}","Metadata":{"__proto__":{"polluted":true}}}`)
  const view = k.discover('hostile')
  const reported: InvalidEntry[] = []
  view.on('invalid', (e) => reported.push(e))
  await view.ready
  await eventually(() => reported.length === 4, 'four reports')
  // a weight out of the bounds of a registration (issue 30, finding 5) is skipped like a bad Addr: clamped
  // to 1000000 it would still take all but one pick in a million
  t.deepEqual(
    view.instances.map((i) => i.address),
    [`127.0.0.1:${port}`],
  )
  t.regex(reported.find((r) => r.key.endsWith('/d'))!.reason, /weight 1e\+308 is out of bounds/)
  t.false(Object.hasOwn(view.instances[0]!.metadata, '__proto__'))
  const client = k.service('hostile')
  for (let i = 0; i < 6; i++) {
    const res = await client.request('/')
    t.is(await res.body.text(), 'ok')
  }
})

test('a refused register() leaves nothing behind', async (t) => {
  await using k = await kit()
  await t.throwsAsync(
    k.register({
      service: 'svc',
      address: '127.0.0.1:7',
      signal: 'x' as unknown as AbortSignal,
    }),
    invalid,
  )
  await t.throwsAsync(
    k.register({ service: 'svc', address: '127.0.0.1:7', ttl: 5 } as unknown as Parameters<
      EtcdKit['register']
    >[0]),
    { ...invalid, message: /"ttl"/ },
  )
  // not "already registered by this kit"
  const reg = await k.register({ service: 'svc', address: '127.0.0.1:7' })
  t.is(reg.address, '127.0.0.1:7')
  await reg.deregister()
})

test('timeouts of 2^31 ms or more, and non-finite ones, are refused at the call', async (t) => {
  const { endpoints } = await etcd()
  for (const callTimeout of [2 ** 31, 1e300, Number.POSITIVE_INFINITY])
    t.throws(() => new EtcdKit({ endpoints, callTimeout, logger: silentLogger }), {
      ...invalid,
      message: /callTimeout/,
    })
  await using k = await kit()
  await t.throwsAsync(k.lock('x').acquire({ timeout: 2 ** 31 }), { ...invalid, message: /2147483648/ })
  await t.throwsAsync(k.register({ service: 's', address: '127.0.0.1:1', timeout: 2 ** 31 }), invalid)
  t.throws(() => k.service('s', { headersTimeout: 2 ** 31 }), invalid)
})

test('unknown keys are refused with the key named; values JSON cannot carry are refused', async (t) => {
  const { endpoints } = await etcd()
  t.throws(() => new EtcdKit({ endpoint: endpoints[0] } as unknown as EtcdKitOptions), {
    ...invalid,
    message: /"endpoint"/,
  })
  await using k = await kit()
  t.throws(() => k.service('s', { retry: 3 } as never), { ...invalid, message: /"retry"/ })
  t.throws(() => k.service('s2', { breaker: { timeout: 1 } } as never), { ...invalid, message: /"timeout"/ })
  await t.throwsAsync(k.lock('x').acquire({ wait: false } as never), { ...invalid, message: /"wait"/ })
  await t.throwsAsync(k.config.set('a', 'b', { servce: 'x' } as never), { ...invalid, message: /"servce"/ })
  await t.throwsAsync(k.election('e').campaign('v', { sig: 1 } as never), { ...invalid, message: /"sig"/ })
  const held = await k.lock('guarded').acquire()
  await t.throwsAsync(held.ifOwner({ puts: { a: 'b' } } as never), { ...invalid, message: /"puts"/ })
  await held.release()
  for (const metadata of [{ x: { y: Number.NaN } }, { m: new Map([['a', 1]]) }, { u: [undefined] }])
    await t.throwsAsync(k.register({ service: 's', address: '127.0.0.1:2', metadata }), invalid)
})

test('request(): bad paths and options are coded errors (async, never a raw TypeError or undici error)', async (t) => {
  const { server, address } = await httpServer()
  t.teardown(() => server.close())
  await using k = await kit()
  await k.register({ service: 'web', address })
  const client = k.service('web')
  await client.ready
  await eventually(() => client.instances.length === 1, 'the instance')
  for (const path of ['http://evil.example/x', 'x', '', 5])
    await t.throwsAsync(client.request(path as string), { ...invalid, message: /path/ })
  t.notThrows(() => {
    client.request('/', null as never).catch(() => {})
  })
  await t.throwsAsync(client.request('/', null as never), invalid)
  const bad: unknown[] = [
    { method: 'BAD METHOD' },
    { headers: { 'bad header': 'x' } },
    { headers: { ok: 'bad\nvalue' } },
    { headersTimeout: -1 },
    { bodyTimeout: 'x' },
    { signal: 'x' },
  ]
  for (const options of bad) {
    const err = await t.throwsAsync(client.request('/', options as never), undefined, inspect(options))
    t.is((err as { code?: string })?.code, 'ETCDKIT_INVALID_ARGUMENT', `${inspect(options)}: ${err?.message}`)
  }
  const ok = await client.request('/')
  t.is(ok.statusCode, 200)
  await ok.body.dump()
})

test('errors of etcd calls are coded, with the original as cause', async (t) => {
  const k = await kit()
  const election = k.election('e')
  const held = await k.lock('l').acquire()
  await k.close()
  for (const call of [
    () => k.config.get('a'),
    () => k.config.set('a', 'b'),
    () => k.config.delete('a'),
    () => election.leader(),
    () => held.ifOwner(),
  ]) {
    const err = await t.throwsAsync(call())
    t.truthy((err as { code?: string })?.code?.startsWith('ETCDKIT_'), `${err?.name}: ${err?.message}`)
  }
})

test('secrets stay out of messages, JSON and inspection; echoed values are capped', async (t) => {
  const { endpoints } = await etcd()
  class Credentials {
    username = 'u'
    password = 'hunter2-secret'
  }
  const e1 = t.throws(() => new EtcdKit({ endpoints, auth: new Credentials(), logger: silentLogger }))
  t.false(e1?.message.includes('hunter2'), e1?.message)
  const e2 = t.throws(
    () =>
      new EtcdKit(
        new (class Opts {
          auth = { username: 'u', password: 'hunter2-secret' }
        })() as never,
      ),
  )
  t.false(e2?.message.includes('hunter2'), e2?.message)
  const k = new EtcdKit({
    endpoints,
    auth: { username: 'u', password: 'hunter2-secret' },
    logger: silentLogger,
  })
  t.teardown(() => k.close())
  t.false(JSON.stringify(k).includes('hunter2'))
  t.false(inspect(k, { depth: 20 }).includes('hunter2'))
  t.false(inspect(k.client, { depth: 20 }).includes('hunter2'))
  t.false(JSON.stringify(Object.entries(k)).includes('hunter2'))
  const long = t.throws(() => k.discover('x'.repeat(1_000_000)), invalid)
  t.true((long?.message.length ?? 0) < 1_000, `${long?.message.length} characters`)
})

test('auth without TLS to a non-loopback endpoint warns once; TLS options are checked at construction', async (t) => {
  const warnings: string[] = []
  const logger: Logger = { ...silentLogger, warn: (_o: unknown, m?: string) => void warnings.push(m ?? '') }
  const remote = new EtcdKit({
    endpoints: ['etcd.example.invalid:2379'],
    auth: { username: 'u', password: 'p' },
    logger,
  })
  await remote.close()
  t.is(warnings.filter((w) => /plaintext/.test(w)).length, 1)
  const local = new EtcdKit({ endpoints: ['127.0.0.1:2379'], auth: { username: 'u', password: 'p' }, logger })
  await local.close()
  t.is(warnings.filter((w) => /plaintext/.test(w)).length, 1)
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
  const cases: unknown[] = [
    { ca: 123 },
    { ca: pem, cert: pem },
    { ca: '/no/such/ca.pem' },
    { ca: pem, extra: 1 },
    { cert: pem, key: pem },
  ]
  for (const tls of cases)
    t.throws(
      () => new EtcdKit({ endpoints: ['127.0.0.1:2379'], tls: tls as never, logger }),
      invalid,
      inspect(tls),
    )
  t.throws(() => new EtcdKit({ endpoints: ['http://127.0.0.1:1', 'https://127.0.0.1:2'], logger }), {
    ...invalid,
    message: /http/,
  })
  const arrayCa = new EtcdKit({ endpoints: ['127.0.0.1:2379'], tls: { ca: [pem, Buffer.from(pem)] }, logger })
  await arrayCa.close()
})

test('registry weights out of the bounds a registration may write are skipped on read and reported once (issue 30, finding 5)', async (t) => {
  const { server, address } = await httpServer()
  t.teardown(() => server.close())
  await using k = await kit()
  const write = (name: string, metadata: unknown) =>
    k.client
      .put(`${k.namespace}services/w/${name}`)
      .value(JSON.stringify({ Op: 0, Addr: address, Metadata: metadata }))
  await write('huge', { weight: 1e308 })
  await write('over', { weight: 1_000_001 })
  await write('negative', { weight: -1 })
  await write('fraction', { weight: 2.5 })
  await write('text', { weight: '2' })
  await write('max', { weight: 1_000_000 })
  await write('zero', { weight: 0 })
  await write('plain', { version: '1' })
  const warnings: string[] = []
  const logger: Logger = { ...silentLogger, warn: (o: unknown) => void warnings.push(JSON.stringify(o)) }
  await using reader = await kit({ namespace: k.namespace, logger })
  const view = reader.discover('w')
  const reported: InvalidEntry[] = []
  view.on('invalid', (e) => reported.push(e))
  await view.ready
  await eventually(() => reported.length === 5, 'five reports')
  t.deepEqual(
    view.instances.map((i) => [i.key.split('/').at(-1), i.weight]),
    [
      ['max', 1_000_000],
      ['plain', 1],
      ['zero', 0],
    ],
  )
  // reported once per key and value: the same value written again is not reported again
  await write('huge', { weight: 1e308 })
  await write('plain', { version: '2' })
  await eventually(() => view.instances.some((i) => i.metadata.version === '2'), 'the later change')
  t.is(reported.length, 5)
  t.is(warnings.filter((w) => w.includes('/huge')).length, 1)
})

test('set() refuses null and non-strings with a coded error pointing to delete() (issue 30, finding 3)', async (t) => {
  await using k = await kit()
  await k.config.set('keep', 'v')
  const err = await t.throwsAsync(k.config.set('keep', null as never), { ...invalid, message: /delete\(\)/ })
  t.regex(err!.message, /"keep"/)
  for (const value of [undefined, 5, {}, ['a']])
    await t.throwsAsync(k.config.set('keep', value as never), { ...invalid, message: /"keep"/ })
  t.is(await k.config.get('keep'), 'v', 'nothing was deleted')
  // setMany keeps its documented null = delete
  await k.config.setMany({ keep: null })
  t.is(await k.config.get('keep'), undefined)
})

test('every value we write is checked alike: a lone surrogate is refused by config and elections (issue 30, finding 4)', async (t) => {
  await using k = await kit()
  const lone = 'a\ud800b'
  const surrogate = { ...invalid, message: /lone surrogate/ }
  await t.throwsAsync(k.config.set('k', lone), surrogate)
  await t.throwsAsync(k.config.setMany({ k: lone }), surrogate)
  await t.throwsAsync(k.config.set('k', 'v', { writer: lone }), surrogate)
  const election = k.election('e')
  await t.throwsAsync(election.campaign(lone), surrogate)
  const leadership = await election.campaign('ok')
  await t.throwsAsync(election.proclaim(lone), surrogate)
  await t.throwsAsync(leadership.proclaim('\udc00'), surrogate)
  t.is((await election.leader())?.value, 'ok')
  await t.throwsAsync(
    k.register({ service: 's', address: '127.0.0.1:9', metadata: { zone: lone } }),
    surrogate,
  )
  await t.throwsAsync(
    k.register({ service: 's', address: '127.0.0.1:9', metadata: { [lone]: 1 } }),
    surrogate,
  )
  // well-formed text beyond the BMP (a surrogate pair) is fine everywhere
  await k.config.set('k', 'emoji \u{1F600}')
  t.is(await k.config.get('k'), 'emoji \u{1F600}')
  await leadership.proclaim('\u{1F600}')
  await leadership.resign()
})

test('the weight bound applies to every dialect read (Kitex numbers, Kratos strings): out of bounds skipped and reported (issue 30, finding 5)', async (t) => {
  await using k = await kit()
  const put = (key: string, value: string) => k.client.put(`${k.namespace}${key}`).value(value)
  await put(
    'kitex/registry-etcd/echo/10.0.1.3:8888',
    '{"network":"tcp","address":"10.0.1.3:8888","weight":1e308}',
  )
  await put(
    'kitex/registry-etcd/echo/10.0.1.4:8888',
    '{"network":"tcp","address":"10.0.1.4:8888","weight":5}',
  )
  await put(
    '/microservices/hello/a',
    '{"id":"a","name":"hello","version":"v2","metadata":{"weight":"99999999"},"endpoints":["grpc://10.0.1.2:9000"]}',
  )
  await put(
    '/microservices/hello/b',
    '{"id":"b","name":"hello","version":"v2","metadata":{"weight":"7"},"endpoints":["grpc://10.0.1.6:9000"]}',
  )
  const echo = k.discover('echo', { dialect: 'kitex' })
  const hello = k.discover('hello', { dialect: 'kratos' })
  const reported: InvalidEntry[] = []
  echo.on('invalid', (e) => reported.push(e))
  hello.on('invalid', (e) => reported.push(e))
  await Promise.all([echo.ready, hello.ready])
  await eventually(() => reported.length === 2, 'two reports')
  t.deepEqual(
    echo.instances.map((i) => [i.address, i.weight]),
    [['10.0.1.4:8888', 5]],
  )
  t.deepEqual(
    hello.instances.map((i) => [i.address, i.weight]),
    [['10.0.1.6:9000', 7]],
  )
  t.true(
    reported.every((r) => /out of bounds/.test(r.reason)),
    JSON.stringify(reported),
  )
})

// Registry dialect codecs (pure): byte-exact entries from each framework's source, both ways; never a misread.
import test from 'ava'
import { EtcdKitError } from '../src/errors.js'
import { bindReader, bindWriter, DIALECT_NAMES, type DialectName } from '../src/registry/dialects/index.js'
import { bothWays, readOnly } from './fixtures/dialects/fixtures.js'

const ctx = { registryPrefix: 'services/' }

for (const f of bothWays) {
  test(`writes what the framework writes: ${f.title}`, (t) => {
    const w = bindWriter(f.spec, f.instance, ctx)
    t.is(w.key(f.leaseId), f.key, f.source)
    t.is(w.value, f.value, f.source)
  })
  test(`reads what the framework writes: ${f.title}`, (t) => {
    const r = bindReader(typeof f.spec === 'string' ? f.spec : readSpec(f.spec), f.instance.service, ctx)
    t.true(f.key.startsWith(r.prefix), `${f.key} is under ${r.prefix}`)
    const want = f.reads ?? { address: f.instance.address, metadata: f.instance.metadata }
    t.deepEqual(r.decode(f.key, f.value), { kind: 'instance', ...want }, f.source)
  })
}

for (const f of readOnly) {
  test(`reads: ${f.title}`, (t) => {
    const d = bindReader(f.spec, f.service, ctx).decode(f.key, f.value)
    if (f.expect.kind === 'instance') t.deepEqual(d, f.expect, f.source)
    else t.is(d.kind, f.expect.kind, `${f.source}: ${JSON.stringify(d)}`)
  })
}

/** The read options of a write spec (the options both share). */
function readSpec(spec: unknown): unknown {
  const s = spec as Record<string, unknown>
  const keep = ['name', 'key', 'namespace', 'prefix']
  return Object.fromEntries(Object.entries(s).filter(([k]) => keep.includes(k)))
}

test('a value of another dialect is never read as an instance', (t) => {
  const instance = {
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.2.0', weight: 3, zone: 'eu-1', protocol: 'http' as const, tags: ['a', 'b'] },
  }
  for (const writer of DIALECT_NAMES) {
    const w = bindWriter(writer, instance, ctx)
    for (const reader of DIALECT_NAMES) {
      if (reader === writer) continue
      // the seed's bare "host:port" is etcd's own legacy value; Kitex and Hertz share one value shape
      if (writer === 'go-zero' && reader === 'etcd') continue
      if (sameShape(writer, reader)) continue
      const d = bindReader(reader, 'orders', ctx).decode('k', w.value)
      t.not(d.kind, 'instance', `${writer} value read by ${reader}: ${JSON.stringify(d)}`)
    }
  }
})

function sameShape(a: DialectName, b: DialectName) {
  const cloudwego = ['kitex', 'hertz']
  return cloudwego.includes(a) && cloudwego.includes(b)
}

test('every dialect reads back what it writes (the well-known metadata that it carries)', (t) => {
  const metadata = { version: '1.2.0', weight: 3, zone: 'eu-1', protocol: 'http' as const, tags: ['a', 'b'] }
  const instance = { service: 'orders', address: '[::1]:3000', metadata }
  for (const name of DIALECT_NAMES) {
    const w = bindWriter(name, instance, ctx)
    const r = bindReader(name, 'orders', ctx)
    const key = w.key('7587870939398291206')
    t.true(key.startsWith(r.prefix), `${name}: ${key} under ${r.prefix}`)
    const d = r.decode(key, w.value)
    if (d.kind !== 'instance') {
      t.fail(`${name}: ${JSON.stringify(d)}`)
      continue
    }
    t.is(d.address, '[::1]:3000', name)
    if (name === 'go-zero') continue // go-zero carries the address only
    for (const field of ['version', 'weight', 'zone', 'tags'] as const)
      t.deepEqual(d.metadata[field], metadata[field], `${name}: ${field}`)
  }
})

test('go-zero: the lease ID goes in the key in decimal, exactly (int64 above 2^53), unless an ID is set', (t) => {
  const instance = { service: 'user', address: '10.0.0.7:8080', metadata: {} }
  const w = bindWriter('go-zero', instance, ctx)
  t.true(w.keyHasLease)
  t.is(w.key('9223372036854775807'), 'user.rpc/9223372036854775807')
  const withId = bindWriter({ name: 'go-zero', key: '/zrpc/user', id: '9007199254740993' }, instance, ctx)
  t.false(withId.keyHasLease)
  t.is(withId.key('5'), '/zrpc/user/9007199254740993')
})

test('go-micro: a node in go-micro v4.9.0 field order (id, address, metadata) is the same instance', (t) => {
  // go-micro v4.9.0 registry/registry.go:39-43 declares Node{Id, Address, Metadata} (micro/plugins' v4 etcd
  // plugin requires that version); a7522e7d6, first tagged v4.10.2, moved Metadata first, as etcdkit writes
  const newer = bothWays.find((f) => f.key === '/micro/registry/foo/foo-1.0.0-123')!
  const v490 =
    '{"name":"foo","version":"1.0.0","metadata":null,"endpoints":null,"nodes":[{"id":"foo-1.0.0-123","address":"localhost:9999","metadata":null}]}'
  t.not(v490, newer.value)
  const r = bindReader('go-micro', 'foo', ctx)
  const d = r.decode(newer.key, v490)
  t.deepEqual(d, r.decode(newer.key, newer.value))
  t.deepEqual(d, { kind: 'instance', address: 'localhost:9999', metadata: { version: '1.0.0' } })
})

test('options: unknown keys, bad values and unknown dialects are refused, naming the value', (t) => {
  const instance = { service: 'user', address: '10.0.0.7:8080', metadata: {} }
  const bad: [unknown, RegExp][] = [
    ['zookeeper', /"zookeeper"/],
    [{ name: 'kratos', shemes: ['grpc'] }, /shemes/],
    [{ name: 'kratos', schemes: ['ftp'] }, /"ftp"/],
    [{ name: 'kratos', schemes: [] }, /schemes/],
    [{ name: 'kratos', id: 'a/b' }, /"a\/b"/],
    [{ name: 'go-zero', id: 0 }, /options\.id 0/],
    [{ name: 'go-zero', id: '9223372036854775808' }, /9223372036854775808/],
    [{ name: 'go-zero', key: 'user.rpc/' }, /"user.rpc\/"/],
    [{ name: 'kitex', tags: { a: 1 } }, /tags\.a 1/],
    [{ name: 'hertz', prefix: 'x' }, /prefix/],
    [{ name: 'go-micro', id: '..' }, /"\.\."/],
    [{ name: 'etcd', key: 'x' }, /key/],
  ]
  for (const [spec, message] of bad) {
    const err = t.throws(
      () => bindWriter(spec, instance, ctx),
      { instanceOf: EtcdKitError, message },
      JSON.stringify(spec),
    )
    t.is(err?.code, 'ETCDKIT_INVALID_ARGUMENT')
  }
  t.throws(() => bindReader({ name: 'kratos', schemes: ['grpc'] }, 'user', ctx), { message: /schemes/ })
  t.throws(() => bindReader({ name: 'go-zero', id: 1 }, 'user', ctx), { message: /id/ })
})

test('reading never throws, and nothing that is not a value of the dialect becomes an instance', (t) => {
  const values = [
    '',
    'null',
    '[]',
    '{}',
    '{"nodes":[null]}',
    '{"nodes":[{"address":5}]}',
    '{"name":"orders","endpoints":[1]}',
    '{"name":"orders","endpoints":["grpc://"]}',
    '{"address":"10.0.0.1:1","network":"unix"}',
    '{"address":"10.0.0.1:1","weight":"2"}',
    '\u0000',
    'x:99999',
  ]
  for (const name of DIALECT_NAMES) {
    const r = bindReader(name, 'orders', ctx)
    for (const v of values) {
      const d = r.decode('k', v)
      t.not(d.kind, 'instance', `${name} ${JSON.stringify(v)}: ${JSON.stringify(d)}`)
    }
  }
})

test('kratos: each reader picks the endpoint it can call (HTTP client: http/https, gRPC: grpc/grpcs)', (t) => {
  const value =
    '{"id":"a","name":"hello","version":"","metadata":null,"endpoints":["grpcs://10.0.0.1:9000","https://10.0.0.1:8443","http://10.0.0.1:8000"]}'
  const read = (purpose: 'any' | 'http' | 'grpc', spec: unknown = 'kratos') =>
    bindReader(spec, 'hello', ctx, purpose).decode('/microservices/hello/a', value)
  t.like(read('any'), {
    kind: 'instance',
    address: '10.0.0.1:9000',
    metadata: { scheme: 'grpcs', protocol: 'grpc' },
  })
  t.like(read('http'), { kind: 'instance', address: '10.0.0.1:8000', metadata: { scheme: 'http' } })
  t.like(read('grpc'), { kind: 'instance', address: '10.0.0.1:9000', metadata: { scheme: 'grpcs' } })
  t.like(read('http', { name: 'kratos', scheme: 'https' }), {
    address: '10.0.0.1:8443',
    metadata: { protocol: 'https' },
  })
  t.is(read('any', { name: 'kratos', scheme: 'grpc' }).kind, 'other')
})

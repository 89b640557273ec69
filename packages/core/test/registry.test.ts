import { uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { DIALECTS, etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('a registration is the Go endpoints JSON under services/<service>/<address>, on the lease', async (t) => {
  const { endpoints, etcdctl } = await etcd()
  const ns = uniquePrefix('fmt')
  await using k = new EtcdKit({ endpoints, namespace: ns, logger: silentLogger })
  const reg = await k.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0', weight: 2 },
  })
  t.is(reg.key, 'services/orders/10.0.0.7:3000')
  const out = await etcdctl(['get', '--prefix', `${ns}services/`])
  t.is(
    out,
    `${ns}services/orders/10.0.0.7:3000\n{"Op":0,"Addr":"10.0.0.7:3000","Metadata":{"version":"1.4.0","weight":2}}\n`,
  )
  // int64 lease ids lose precision in JSON.parse: read the digits
  const json = await etcdctl(['get', `${ns}services/orders/10.0.0.7:3000`, '-w', 'json'])
  t.is(/"lease":(\d+)/.exec(json)?.[1], k.session.lease?.id)
  await reg.deregister()
  t.is(await etcdctl(['get', '--prefix', `${ns}services/`]), '')
})

test('Go-format and bare host:port values written by etcdctl appear in discover(); deleting removes them', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const view = k.discover('orders')
  await view.ready
  t.deepEqual(view.instances, [])
  const ns = k.namespace
  await etcdctl([
    'put',
    `${ns}services/orders/10.0.0.1:80`,
    '{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"weight":3}}',
  ])
  await etcdctl(['put', `${ns}services/orders/10.0.0.2:80`, '10.0.0.2:80'])
  await etcdctl(['put', `${ns}services/orders/go-nil`, '{"Op":0,"Addr":"10.0.0.3:80","Metadata":null}'])
  await eventually(() => view.instances.length === 3, 'three instances')
  t.deepEqual(
    view.instances.map((i) => [i.address, i.weight]),
    [
      ['10.0.0.1:80', 3],
      ['10.0.0.2:80', 1],
      ['10.0.0.3:80', 1],
    ],
  )
  await etcdctl(['del', `${ns}services/orders/10.0.0.1:80`])
  await etcdctl(['put', `${ns}services/orders/go-nil`, '{"Op":1,"Addr":"10.0.0.3:80"}'])
  await eventually(() => view.instances.length === 1, 'one instance left')
  t.is(view.instances[0]?.address, '10.0.0.2:80')
  await etcdctl(['del', `${ns}services/orders/10.0.0.2:80`])
  await eventually(() => view.instances.length === 0, 'empty')
})

test('values that cannot be read are skipped and reported once per key and value', async (t) => {
  const { etcdctl } = await etcd()
  const warnings: object[] = []
  await using k = await kit({ logger: { debug() {}, info() {}, error() {}, warn: (o) => warnings.push(o) } })
  const ns = k.namespace
  await etcdctl(['put', `${ns}services/api/bad1`, '{not json'])
  const view = k.discover('api')
  const invalid: string[] = []
  view.on('invalid', (e) => invalid.push(`${e.key}: ${e.reason}`))
  await view.ready
  await etcdctl(['put', `${ns}services/api/bad2`, 'no-port-here'])
  await etcdctl(['put', `${ns}services/api/ok`, '127.0.0.1:9'])
  await eventually(() => view.instances.length === 1, 'the readable one')
  t.is(invalid.length, 2)
  t.regex(invalid[0]!, /^services\/api\/bad1: not JSON/)
  t.regex(invalid[1]!, /^services\/api\/bad2: invalid bare address value "no-port-here"/)
  t.is(warnings.filter((w) => 'reason' in w).length, 2)
  // a relist (compaction, reconnect) must not report the same values again
  await etcdctl(['put', `${ns}services/api/ok`, '127.0.0.1:10'])
  await eventually(() => view.instances[0]?.address === '127.0.0.1:10', 'update')
  t.is(warnings.filter((w) => 'reason' in w).length, 2)
})

for (const dialect of DIALECTS) {
  test(`${dialect}: a registration deleted by someone else is written again`, async (t) => {
    const { etcdctl } = await etcd()
    await using k = await kit()
    const reg = await k.register({ service: 'billing', address: '127.0.0.1:7001', dialects: [dialect] })
    const [key] = reg.keys
    const value = await etcdctl(['get', `${k.namespace}${key}`, '--print-value-only'])
    t.not(value, '')
    await etcdctl(['del', `${k.namespace}${key}`])
    await eventually(
      async () => (await etcdctl(['get', `${k.namespace}${key}`, '--print-value-only'])) !== '',
      'the key back',
    )
    t.is(await etcdctl(['get', `${k.namespace}${key}`, '--print-value-only']), value)
    await reg.deregister()
    await reg.deregister() // idempotent
    t.is(await etcdctl(['get', `${k.namespace}${key}`]), '')
  })
}

test('1,000 registrations from one kit use one lease', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const regs = await Promise.all(
    Array.from({ length: 1000 }, (_, i) =>
      k.register({ service: `svc${i % 10}`, address: `10.1.${i >> 8}.${i & 255}:80` }),
    ),
  )
  t.is(regs.length, 1000)
  const out = await etcdctl(['get', '--prefix', `${k.namespace}services/`, '-w', 'json'])
  const leases = new Set([...out.matchAll(/"lease":(\d+)/g)].map((m) => m[1]))
  t.is((out.match(/"key":/g) ?? []).length, 1000)
  t.deepEqual([...leases], [k.session.lease?.id])
})

test('bad input is rejected at the call with the bad value in the message, and writes nothing', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const cases: Array<[unknown, RegExp]> = [
    [{ service: 'or ders', address: '1.2.3.4:80' }, /invalid service name "or ders"/],
    [{ service: '', address: '1.2.3.4:80' }, /invalid service name ""/],
    [{ service: 'a/b', address: '1.2.3.4:80' }, /invalid service name "a\/b"/],
    [{ service: 42, address: '1.2.3.4:80' }, /invalid service name 42/],
    [{ service: 'ok', address: '1.2.3.4' }, /invalid address "1.2.3.4": expected "host:port"/],
    [{ service: 'ok', address: '1.2.3.4:0' }, /port "0" is not in 1..65535/],
    [{ service: 'ok', address: '1.2.3.4:99999' }, /port "99999"/],
    [{ service: 'ok', address: '::1:80' }, /IPv6 host must be in brackets/],
    [{ service: 'ok', address: '[zz]:80' }, /"zz" is not an IPv6 address/],
    [{ service: 'ok', address: 'a b:80' }, /"a b" is not a host name/],
    [{ service: 'ok', address: '1.2.3.4:80', metadata: { weight: -1 } }, /invalid metadata.weight -1/],
    [{ service: 'ok', address: '1.2.3.4:80', metadata: { weight: 1.5 } }, /invalid metadata.weight 1.5/],
    [
      { service: 'ok', address: '1.2.3.4:80', metadata: { protocol: 'ftp' } },
      /invalid metadata.protocol "ftp"/,
    ],
    [{ service: 'ok', address: '1.2.3.4:80', metadata: { tags: 'a' } }, /invalid metadata.tags "a"/],
    [
      { service: 'ok', address: '1.2.3.4:80', metadata: { f: () => 1 } },
      /invalid metadata.f .*not representable/,
    ],
    [{ service: 'ok', address: '1.2.3.4:80', metadata: { n: Number.NaN } }, /invalid metadata.n NaN/],
    [{ service: 'ok', address: '1.2.3.4:80', metadata: [] }, /invalid metadata \[\]/],
    [{ service: 'ok', address: '1.2.3.4:80', timeout: -1 }, /invalid register timeout -1/],
    [null, /invalid register options null/],
  ]
  for (const [options, message] of cases) {
    await t.throwsAsync(
      k.register(options as never),
      { code: 'ETCDKIT_INVALID_ARGUMENT', message },
      String(message),
    )
  }
  t.throws(() => k.discover('bad name'), { code: 'ETCDKIT_INVALID_ARGUMENT', message: /"bad name"/ })
  t.is(await etcdctl(['get', '--prefix', k.namespace]), '')
  const { endpoints } = await etcd()
  const bad: Array<[unknown, RegExp]> = [
    [{ endpoints, ttl: 1 }, /invalid ttl 1/],
    [{ endpoints, ttl: 2.5 }, /invalid ttl 2.5/],
    [{ endpoints, ttl: '10' }, /invalid ttl "10"/],
    [{ endpoints: [] }, /invalid endpoints \[\]/],
    [{ endpoints: ['localhost'] }, /invalid endpoint "localhost"/],
    [{ endpoints, namespace: 'x' }, /invalid namespace "x"/],
    [{ endpoints, registryPrefix: 'a/../' }, /invalid registryPrefix "a\/..\/"/],
    [{ endpoints, callTimeout: 0 }, /invalid callTimeout 0/],
    [{ endpoints, auth: { username: 'u' } }, /invalid auth/],
    [{ endpoints, logger: {} }, /invalid logger: it has no warn\(\), error\(\), info\(\) or log\(\) method/],
  ]
  for (const [options, message] of bad) {
    t.throws(
      () => new EtcdKit(options as never),
      { code: 'ETCDKIT_INVALID_ARGUMENT', message },
      String(message),
    )
  }
})

test('registering the same address twice in one kit is an error; after close everything is refused', async (t) => {
  const k = await kit()
  await k.register({ service: 'dup', address: '127.0.0.1:1' })
  await t.throwsAsync(k.register({ service: 'dup', address: '127.0.0.1:1' }), {
    message: /already registered/,
  })
  await k.close()
  await k.close()
  await t.throwsAsync(k.register({ service: 'dup', address: '127.0.0.1:2' }), { code: 'ETCDKIT_CLOSED' })
  t.throws(() => k.discover('dup'), { code: 'ETCDKIT_CLOSED' })
})

test('register fails with a clear error when etcd cannot be reached', async (t) => {
  const k = new EtcdKit({ endpoints: ['127.0.0.1:1'], logger: silentLogger })
  const started = Date.now()
  await t.throwsAsync(k.register({ service: 'x', address: '127.0.0.1:80', timeout: 500 }), {
    code: 'ETCDKIT_ETCD_UNAVAILABLE',
    message: /no etcd lease after 500 ms from 127.0.0.1:1/,
  })
  t.true(Date.now() - started < 3_000)
  await k.close()
})

test('the register timeout fires under garbage collection when a signal is given too', async (t) => {
  // On Node 20, AbortSignal.any([signal, AbortSignal.timeout(ms)]) can be collected while awaited and never
  // fire: churn the heap while waiting so that a regression hangs here.
  const k = new EtcdKit({ endpoints: ['127.0.0.1:1'], logger: silentLogger })
  let churning = true
  const churn = (async () => {
    while (churning) {
      Array.from({ length: 200_000 }, (_, i) => ({ i }))
      await new Promise((r) => setImmediate(r))
    }
  })()
  const started = Date.now()
  await t.throwsAsync(
    k.register({ service: 'x', address: '127.0.0.1:80', timeout: 300, signal: new AbortController().signal }),
    { code: 'ETCDKIT_ETCD_UNAVAILABLE' },
  )
  churning = false
  await churn
  t.true(Date.now() - started < 5_000)
  await k.close()
})

// Registering and discovering in registry dialects against a real etcd: one txn, one lease, every guarantee.
import test from 'ava'
import { EtcdKitError } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

const ALL = ['etcd', 'go-zero', 'kratos', 'kitex', 'hertz', 'go-micro'] as const

/**
 * Every registry key under the kit's namespace (not its session record) with its value, lease (decimal) and
 * mod revision, as etcd has them.
 */
async function dump(ns: string) {
  const { etcdctl } = await etcd()
  const json = await etcdctl(['get', '--prefix', ns, '-w', 'json'])
  // int64 lease ids lose precision in JSON.parse: take the digits from the text
  const leases = [...json.matchAll(/"lease":(\d+)/g)].map((m) => m[1])
  const kvs = (JSON.parse(json).kvs ?? []) as { key: string; value: string; mod_revision: number }[]
  return kvs
    .map((kv, i) => ({
      key: Buffer.from(kv.key, 'base64').toString().slice(ns.length),
      value: Buffer.from(kv.value, 'base64').toString(),
      lease: leases[i],
      rev: kv.mod_revision,
    }))
    .filter((kv) => !kv.key.startsWith('sessions/'))
}

test('register in six dialects: every key written in one txn on the kit lease, with the exact bytes', async (t) => {
  await using k = await kit()
  const reg = await k.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0', weight: 2 },
    dialects: [...ALL],
  })
  const lease = k.session.lease!.id
  t.is(reg.key, 'services/orders/10.0.0.7:3000')
  t.deepEqual(reg.dialects, ALL)
  const kvs = await dump(k.namespace)
  t.deepEqual(
    kvs.map((kv) => [kv.key, kv.value]),
    [
      [
        '/micro/registry/orders/orders-10.0.0.7:3000',
        '{"name":"orders","version":"1.4.0","metadata":null,"endpoints":null,"nodes":[{"metadata":{"weight":"2"},"id":"orders-10.0.0.7:3000","address":"10.0.0.7:3000"}]}',
      ],
      [
        '/microservices/orders/10.0.0.7:3000',
        '{"id":"10.0.0.7:3000","name":"orders","version":"1.4.0","metadata":{"weight":"2"},"endpoints":["http://10.0.0.7:3000"]}',
      ],
      [
        'hertz/registry-etcd/orders/10.0.0.7:3000',
        '{"network":"tcp","address":"10.0.0.7:3000","weight":2,"tags":{"version":"1.4.0"}}',
      ],
      [
        'kitex/registry-etcd/orders/10.0.0.7:3000',
        '{"network":"tcp","address":"10.0.0.7:3000","weight":2,"tags":{"version":"1.4.0"}}',
      ],
      [`orders.rpc/${BigInt(lease)}`, '10.0.0.7:3000'],
      [
        'services/orders/10.0.0.7:3000',
        '{"Op":0,"Addr":"10.0.0.7:3000","Metadata":{"version":"1.4.0","weight":2}}',
      ],
    ],
  )
  t.true(
    kvs.every((kv) => kv.lease === lease),
    'all on the kit lease',
  )
  t.is(new Set(kvs.map((kv) => kv.rev)).size, 1, 'one revision: one txn')
  t.deepEqual([...reg.keys].sort(), kvs.map((kv) => kv.key).sort())
  await reg.deregister()
  t.deepEqual(await dump(k.namespace), [])
})

test('a dialect key deleted by someone else is written again; so is every key after a lost lease (go-zero under the new lease ID)', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ ttl: 3 })
  await k.register({ service: 'pay', address: '10.0.0.8:80', dialects: ['etcd', 'go-zero', 'kratos'] })
  const ns = k.namespace
  await etcdctl(['del', `${ns}/microservices/pay/10.0.0.8:80`])
  await eventually(
    async () => (await dump(ns)).some((kv) => kv.key === '/microservices/pay/10.0.0.8:80'),
    'the kratos key written again',
  )
  const old = k.session.lease!
  await etcdctl(['lease', 'revoke', old.hex])
  await eventually(async () => {
    const kvs = await dump(ns)
    const lease = k.session.lease
    return (
      lease !== undefined &&
      lease.id !== old.id &&
      kvs.length === 3 &&
      kvs.every((kv) => kv.lease === lease.id) &&
      kvs.some((kv) => kv.key === `pay.rpc/${lease.id}`)
    )
  }, 'all three keys on the new lease, the go-zero key named after it')
  t.false(
    (await dump(ns)).some((kv) => kv.key === `pay.rpc/${old.id}`),
    'the old go-zero key is gone',
  )
})

test('discover() reads each dialect as its framework writes it; values of another dialect are reported once, never read', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const ns = k.namespace
  const put = (key: string, value: string) => etcdctl(['put', `${ns}${key}`, value])
  await put('user.rpc/7587870939398291206', '10.0.1.1:8080')
  await put(
    '/microservices/hello/a',
    '{"id":"a","name":"hello","version":"v2","metadata":{"weight":"3","zone":"eu"},"endpoints":["grpc://10.0.1.2:9000","http://10.0.1.2:8000"]}',
  )
  await put(
    'kitex/registry-etcd/echo/10.0.1.3:8888',
    '{"network":"tcp","address":"10.0.1.3:8888","weight":0,"tags":{"zone":"eu"}}',
  )
  await put(
    'hertz/registry-etcd/web/[::1]:8000',
    '{"network":"tcp","address":"[::1]:8000","weight":15,"tags":null}',
  )
  await put(
    '/micro/registry/greeter/greeter-1',
    '{"name":"greeter","version":"latest","metadata":null,"endpoints":[],"nodes":[{"metadata":{"protocol":"grpc"},"id":"greeter-1","address":"10.0.1.5:41235"}]}',
  )
  // another dialect's value under a go-zero Key: go-zero would dial it; etcdkit skips and reports it
  await put('user.rpc/1', '{"Op":0,"Addr":"10.0.1.9:80","Metadata":null}')

  const views = {
    user: k.discover('user', { dialect: 'go-zero' }),
    hello: k.discover('hello', { dialect: 'kratos' }),
    helloHttp: k.discover('hello', { dialect: { name: 'kratos', scheme: 'http' } }),
    echo: k.discover('echo', { dialect: 'kitex' }),
    web: k.discover('web', { dialect: 'hertz' }),
    greeter: k.discover('greeter', { dialect: 'go-micro' }),
  }
  const invalid: string[] = []
  views.user.on('invalid', (e) => invalid.push(e.key))
  await Promise.all(Object.values(views).map((v) => v.ready))
  const seen = Object.fromEntries(
    Object.entries(views).map(([name, v]) => [
      name,
      v.instances.map((i) => [i.dialect, i.address, i.weight, i.metadata.zone]),
    ]),
  )
  t.deepEqual(seen, {
    user: [['go-zero', '10.0.1.1:8080', 1, undefined]],
    hello: [['kratos', '10.0.1.2:9000', 3, 'eu']],
    helloHttp: [['kratos', '10.0.1.2:8000', 3, 'eu']],
    echo: [['kitex', '10.0.1.3:8888', 10, 'eu']],
    web: [['hertz', '[::1]:8000', 15, undefined]],
    greeter: [['go-micro', '10.0.1.5:41235', 1, undefined]],
  })
  t.is(views.hello.instances[0]?.metadata.version, 'v2')
  t.deepEqual(invalid, ['user.rpc/1'])
  // a change is seen through the same view
  await put('user.rpc/8', '10.0.1.8:8080')
  await eventually(() => views.user.instances.length === 2, 'the second go-zero instance')
  for (const v of Object.values(views)) v.close()
})

test('a Node registration in a dialect is found by discover() in that dialect, and by kit.service()', async (t) => {
  await using k = await kit()
  await k.register({
    service: 'api',
    address: '127.0.0.1:1',
    metadata: { zone: 'b', weight: 4 },
    dialects: ['kratos', { name: 'kitex', tags: { cluster: 'c1' } }],
  })
  for (const dialect of ['kratos', 'kitex'] as const) {
    const view = k.discover('api', { dialect })
    await view.ready
    t.like(
      view.instances[0],
      { dialect, address: '127.0.0.1:1', weight: 4, metadata: { zone: 'b' } },
      dialect,
    )
    view.close()
  }
  const client = k.service('api', { dialect: 'kitex' })
  await client.ready
  t.is(client.pick().address, '127.0.0.1:1')
  t.is(k.service('api', { dialect: 'kitex' }), client, 'one client per service and dialect')
  t.not(k.service('api'), client)
})

test('dialect options are checked at the call: unknown dialects, duplicates, clashing go-zero keys', async (t) => {
  await using k = await kit()
  const base = { service: 'dup', address: '10.0.0.1:1' }
  await t.throwsAsync(k.register({ ...base, dialects: ['consul' as 'etcd'] }), {
    instanceOf: EtcdKitError,
    message: /"consul"/,
  })
  await t.throwsAsync(k.register({ ...base, dialects: [] }), { message: /dialects/ })
  await t.throwsAsync(k.register({ ...base, dialects: ['kratos', { name: 'kratos', id: 'x' }] }), {
    message: /kratos.*twice|twice.*kratos/,
  })
  await t.throwsAsync(k.register({ ...base, dialects: [{ name: 'kratos', shemes: ['grpc'] } as never] }), {
    message: /shemes/,
  })
  t.throws(() => k.discover('dup', { dialect: 'consul' as 'etcd' }), { message: /"consul"/ })
  t.throws(() => k.discover('dup', { dialekt: 'etcd' } as never), { message: /dialekt/ })
  await k.register({ ...base, dialects: ['go-zero'] })
  // the same Key and the same lease: the same etcd key, refused with the way out
  await t.throwsAsync(k.register({ service: 'dup', address: '10.0.0.2:1', dialects: ['go-zero'] }), {
    message: /already registered.*id/,
  })
  await k.register({ service: 'dup', address: '10.0.0.2:1', dialects: [{ name: 'go-zero', id: 2 }] })
  const view = k.discover('dup', { dialect: 'go-zero' })
  await view.ready
  t.deepEqual(view.instances.map((i) => i.address).sort(), ['10.0.0.1:1', '10.0.0.2:1'])
  view.close()
})

test('catalog({ dialect }) lists every service of a dialect; go-zero has no common root and says so', async (t) => {
  await using k = await kit()
  await k.register({ service: 'a', address: '10.0.0.1:1', dialects: ['kratos', 'etcd'] })
  await k.register({ service: 'b', address: '10.0.0.2:1', dialects: ['kratos'] })
  const catalog = k.catalog({ dialect: 'kratos' })
  await catalog.ready
  t.deepEqual(
    [...catalog.services].map(([service, list]) => [service, list.map((i) => [i.dialect, i.address])]),
    [
      ['a', [['kratos', '10.0.0.1:1']]],
      ['b', [['kratos', '10.0.0.2:1']]],
    ],
  )
  catalog.close()
  const etcdCatalog = k.catalog()
  await etcdCatalog.ready
  t.deepEqual([...etcdCatalog.services.keys()], ['a'])
  etcdCatalog.close()
  t.throws(() => k.catalog({ dialect: 'go-zero' }), { message: /discover\(service/ })
})

test('catalog({ dialect, service }) lists one service of any dialect, go-zero included, with its leases', async (t) => {
  await using k = await kit()
  await k.register({ service: 'a', address: '10.0.0.1:1', dialects: ['go-zero', 'kratos'] })
  await k.register({ service: 'ab', address: '10.0.0.2:1', dialects: ['kratos'] })
  for (const dialect of ['go-zero', 'kratos'] as const) {
    using catalog = k.catalog({ dialect, service: 'a' })
    await catalog.ready
    t.is(catalog.dialect, dialect)
    t.deepEqual(
      [...catalog.services].map(([service, list]) => [
        service,
        list.map((i) => [i.dialect, i.address, i.lease]),
      ]),
      [['a', [[dialect, '10.0.0.1:1', k.session.lease!.hex]]]],
      dialect,
    )
  }
  using goZero = k.catalog({ dialect: 'go-zero', service: 'a' })
  t.is(goZero.root, 'a.rpc/')
  t.throws(() => k.catalog({ dialect: 'kratos', service: 'a b' }), { message: /"a b"/ })
})

test('register({ protocol }) tells Kratos and go-micro what the instance speaks, and leaves etcd metadata alone', async (t) => {
  await using k = await kit()
  const reg = await k.register({
    service: 'rpc',
    address: '10.0.0.3:50051',
    protocol: 'grpc',
    dialects: ['etcd', 'kratos', 'go-micro'],
  })
  const kvs = Object.fromEntries((await dump(k.namespace)).map((kv) => [kv.key, kv.value]))
  t.is(kvs[reg.keys[0]!], '{"Op":0,"Addr":"10.0.0.3:50051","Metadata":null}')
  t.regex(kvs[reg.keys[1]!]!, /"endpoints":\["grpc:\/\/10\.0\.0\.3:50051"\]/)
  t.regex(kvs[reg.keys[2]!]!, /"nodes":\[\{"metadata":\{"protocol":"grpc"\}/)
  await t.throwsAsync(k.register({ service: 'rpc', address: '10.0.0.4:1', protocol: 'tcp' as 'grpc' }), {
    message: /protocol "tcp"/,
  })
})

test('one address under two keys (a go-zero server back on a new lease before the old key expired) is one endpoint', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const ns = k.namespace
  // go-zero's reader takes each distinct value once (container.GetValues): so does the service client
  await etcdctl(['put', `${ns}twice.rpc/1`, '127.0.0.1:1'])
  await etcdctl(['put', `${ns}twice.rpc/2`, '127.0.0.1:1'])
  await etcdctl(['put', `${ns}twice.rpc/3`, '127.0.0.1:2'])
  const client = k.service('twice', { dialect: 'go-zero' })
  await client.ready
  const picks: Record<string, number> = {}
  for (let i = 0; i < 100; i++) {
    const address = client.pick().address
    picks[address] = (picks[address] ?? 0) + 1
  }
  t.deepEqual(picks, { '127.0.0.1:1': 50, '127.0.0.1:2': 50 })
})

test('deregister deletes, in one txn, only the keys that still hang off the kit lease', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const reg = await k.register({ service: 'own', address: '10.0.0.9:1', dialects: ['etcd', 'kratos'] })
  // someone else took the Kratos key over (no lease): it is theirs now
  await etcdctl(['put', `${k.namespace}${reg.keys[1]}`, 'theirs'])
  await reg.deregister()
  t.deepEqual(
    (await dump(k.namespace)).map((kv) => [kv.key, kv.value]),
    [[reg.keys[1], 'theirs']],
  )
})

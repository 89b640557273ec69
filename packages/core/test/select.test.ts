// Routing for rollouts: kit.service(name, { select }) sends traffic only to matching instances, and
// weight 0 keeps an instance registered but sent no traffic.
import test from 'ava'
import { InvalidArgumentError, NoInstancesError, type ServiceClient } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

/** The distinct addresses 100 picks return, sorted. */
function picked(client: ServiceClient): string[] {
  const seen = new Set<string>()
  for (let i = 0; i < 100; i++) seen.add(client.pick().address)
  return [...seen].sort()
}

test('select by version range, tags, zone, metadata or a predicate', async (t) => {
  await using k = await kit()
  const instances = [
    { address: '127.0.0.1:7001', metadata: { version: '1.4.0', zone: 'a' } },
    { address: '127.0.0.1:7002', metadata: { version: '1.5.0-rc.1', tags: ['canary'], zone: 'b' } },
    { address: '127.0.0.1:7003', metadata: { version: '2.0.0', tags: ['canary', 'eu'], track: 'beta' } },
    { address: '127.0.0.1:7004', metadata: {} },
  ]
  for (const i of instances) await k.register({ service: 'rollout', ...i })
  const cases: [string, Parameters<typeof k.service>[1], string[]][] = [
    ['all', {}, ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003', '127.0.0.1:7004']],
    [
      '^1.4.0 (pre-releases included)',
      { select: { version: '^1.4.0' } },
      ['127.0.0.1:7001', '127.0.0.1:7002'],
    ],
    ['>=2', { select: { version: '>=2' } }, ['127.0.0.1:7003']],
    ['canary', { select: { tags: ['canary'] } }, ['127.0.0.1:7002', '127.0.0.1:7003']],
    ['canary+eu', { select: { tags: ['canary', 'eu'] } }, ['127.0.0.1:7003']],
    ['zone b', { select: { zone: 'b' } }, ['127.0.0.1:7002']],
    ['track', { select: { metadata: { track: 'beta' } } }, ['127.0.0.1:7003']],
    ['predicate', { select: (i) => i.metadata.version === undefined }, ['127.0.0.1:7004']],
  ]
  for (const [name, options, expected] of cases) {
    const client = k.service('rollout', options)
    await eventually(() => client.instances.length === 4, '4 instances')
    t.deepEqual(picked(client), expected, name)
    await client.close()
  }
})

test('weight 0: registered and listed, but never picked; only such instances is a clear error', async (t) => {
  await using k = await kit()
  await k.register({ service: 'drain', address: '127.0.0.1:7101', metadata: { weight: 0 } })
  await k.register({ service: 'drain', address: '127.0.0.1:7102', metadata: { weight: 3 } })
  const client = k.service('drain')
  await eventually(() => client.instances.length === 2, '2 instances')
  t.deepEqual(
    client.instances.map((i) => [i.address, i.weight]),
    [
      ['127.0.0.1:7101', 0],
      ['127.0.0.1:7102', 3],
    ],
  )
  t.deepEqual(picked(client), ['127.0.0.1:7102'])
  await client.close()

  const only = k.service('drain', { select: { metadata: { weight: 0 } } })
  await eventually(() => only.instances.length === 2, '2 instances')
  const err = t.throws(() => only.pick(), { instanceOf: NoInstancesError })
  t.regex(err.message, /service "drain": none of its 2 instances is selected \(select option, or weight 0\)/)
})

test('a bad select is refused at kit.service(), naming the value', async (t) => {
  await using k = await kit()
  const cases: [unknown, RegExp][] = [
    [{ version: 'one' }, /invalid select.version "one": expected a semver range/],
    [{ tags: 'canary' }, /invalid select.tags "canary": expected an array of strings/],
    [{ zone: '' }, /invalid select.zone "": expected a non-empty string/],
    [{ metadata: { a: {} } }, /invalid select.metadata.a \{\}: expected a string, number or boolean/],
    [{ versions: '1' }, /unknown key "versions"/],
    ['v1', /invalid select "v1"/],
  ]
  for (const [select, message] of cases) {
    // @ts-expect-error deliberately wrong
    t.throws(() => k.service('bad', { select }), { instanceOf: InvalidArgumentError, message })
  }
})

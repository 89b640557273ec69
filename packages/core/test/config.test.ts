import { type EtcdCluster, etcdctl, startEtcd } from '@etcdkit/testing'
import test from 'ava'
import {
  type ConfigEvent,
  type ConfigValue,
  EtcdKit,
  InvalidArgumentError,
  InvalidConfigValueError,
  type Logger,
  silentLogger,
} from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

/** Type-level equality: compiles only when A and B are the same type. */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false
const expectType = <T extends true>(_: T) => {}

function record<T>(handle: ConfigValue<T>) {
  const changes: T[] = []
  const invalid: Array<{ error: InvalidConfigValueError; text: string }> = []
  handle.on('change', (value) => changes.push(value))
  handle.on('invalid', (error, text) => invalid.push({ error, text }))
  return { changes, invalid }
}

test('an etcdctl put reaches current and fires change; delete falls back to the default', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const limit = k.config.value('rate-limit', { parse: Number, default: 100 })
  expectType<Equal<typeof limit.current, number>>(true)
  const { changes } = record(limit)
  t.is(limit.current, 100)
  await limit.ready
  t.is(limit.current, 100)
  t.deepEqual(changes, [])

  const seen = new Promise<[number, string | undefined, string | undefined]>((resolve) =>
    limit.once('change', (value, change) => resolve([value, change.key, change.text])),
  )
  await etcdctl(['put', `${k.namespace}config/rate-limit`, '250'])
  t.deepEqual(await seen, [250, 'config/rate-limit', '250'])
  t.is(limit.current, 250)

  await etcdctl(['put', `${k.namespace}config/rate-limit`, '300'])
  await eventually(() => limit.current === 300, 'the second put')
  await etcdctl(['del', `${k.namespace}config/rate-limit`])
  await eventually(() => limit.current === 100, 'the default after delete')
  t.deepEqual(changes, [250, 300, 100])
})

test('values are typed by parse and default', async (t) => {
  await using k = await kit()
  const text = k.config.value('a')
  expectType<Equal<typeof text.current, string | undefined>>(true)
  const withDefault = k.config.value('a', { default: 'x' })
  expectType<Equal<typeof withDefault.current, string>>(true)
  const maybe = k.config.value('a', { parse: Number })
  expectType<Equal<typeof maybe.current, number | undefined>>(true)
  const json = k.config.value<{ n: number }>('a', { parse: JSON.parse, default: { n: 1 } })
  expectType<Equal<typeof json.current, { n: number }>>(true)
  t.is(withDefault.current, 'x')
  t.deepEqual(json.current, { n: 1 })
})

test('get, set and delete address one key; etcdctl sees what set wrote', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ service: 'orders' })
  t.is(await k.config.get('feature'), undefined)
  await k.config.set('feature', 'on ✓')
  await k.config.set('feature', 'off', { service: 'orders' })
  t.is(await etcdctl(['get', `${k.namespace}config/feature`, '--print-value-only']), 'on ✓\n')
  t.is(await etcdctl(['get', `${k.namespace}config/orders/feature`, '--print-value-only']), 'off\n')
  t.is(await k.config.get('feature'), 'on ✓')
  t.is(await k.config.get('feature', { service: 'orders' }), 'off')
  t.true(await k.config.delete('feature', { service: 'orders' }))
  t.false(await k.config.delete('feature', { service: 'orders' }))
  t.is(await k.config.get('feature', { service: 'orders' }), undefined)
  await t.throwsAsync(k.config.set('feature', 5 as unknown as string), { instanceOf: InvalidArgumentError })
  await t.throwsAsync(k.config.set('feature', 'x', { service: 'a/b' }), { instanceOf: InvalidArgumentError })
})

test('a refused value fires invalid with the error and the text; current keeps the last good value', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const key = `${k.namespace}config/pool`
  const pool = k.config.value('pool', {
    parse: Number,
    validate: (n) => Number.isInteger(n) && n > 0,
    default: 10,
  })
  const { changes, invalid } = record(pool)
  await pool.ready
  await etcdctl(['put', key, '20'])
  await eventually(() => pool.current === 20, 'a good value')

  await etcdctl(['put', key, 'twenty']) // Number gives NaN
  await eventually(() => invalid.length === 1, 'invalid for NaN')
  await etcdctl(['put', '--', key, '-3']) // validate returns false
  await eventually(() => invalid.length === 2, 'invalid for a rejected value')
  t.is(pool.current, 20)
  t.is(invalid[0]!.text, 'twenty')
  t.true(invalid[0]!.error instanceof InvalidConfigValueError)
  t.is(invalid[0]!.error.code, 'ETCDKIT_INVALID_CONFIG_VALUE')
  t.is(invalid[0]!.error.raw, 'twenty')
  t.is(invalid[0]!.error.key, 'config/pool')
  t.regex(invalid[0]!.error.message, /"twenty".*parse returned NaN/)
  t.is(invalid[1]!.text, '-3')
  t.regex(invalid[1]!.error.message, /validate returned false/)

  await etcdctl(['put', key, '30']) // fixed: updates resume
  await eventually(() => pool.current === 30, 'the fixed value')
  await etcdctl(['put', key, '31'])
  await eventually(() => pool.current === 31, 'the next value')
  t.deepEqual(changes, [20, 30, 31])

  // JSON.parse throwing, and a validate that throws: the cause is kept
  const limits = k.config.value<{ max: number }>('limits', {
    parse: JSON.parse,
    validate: (v) => {
      if (typeof v.max !== 'number') throw new TypeError('max must be a number')
    },
    default: { max: 1 },
  })
  const seen = record(limits)
  await limits.ready
  await etcdctl(['put', `${k.namespace}config/limits`, '{"max": 5}'])
  await eventually(() => limits.current.max === 5, 'a good JSON value')
  await etcdctl(['put', `${k.namespace}config/limits`, '{"max": 5'])
  await etcdctl(['put', `${k.namespace}config/limits`, '{"max": "5"}'])
  await eventually(() => seen.invalid.length === 2, 'two invalid JSON values')
  t.true(seen.invalid[0]!.error.cause instanceof SyntaxError)
  t.true(seen.invalid[1]!.error.cause instanceof TypeError)
  t.deepEqual(limits.current, { max: 5 })

  // a handle opened on an already-read, refused value reports it once listeners exist, and holds the default
  const late = k.config.value('pool', { parse: Number, validate: (n) => n > 100, default: 7 })
  const lateSeen = record(late)
  t.is(late.current, 7)
  await eventually(() => lateSeen.invalid.length === 1, 'invalid reported to a late handle')
  t.is(lateSeen.invalid[0]!.text, '31')
})

/** Every order of the four operations on a key and its service override, against a model. */
test('service override, fallback to shared, fallback to default: every order of puts and deletes', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ service: 'orders' })
  type Op = 'putShared' | 'putOverride' | 'delShared' | 'delOverride'
  const ops: Op[] = ['putShared', 'putOverride', 'delShared', 'delOverride']
  const permutations = (list: Op[]): Op[][] =>
    list.length === 0
      ? [[]]
      : list.flatMap((op, i) => permutations(list.toSpliced(i, 1)).map((p) => [op, ...p]))
  const orders = permutations(ops)
  t.is(orders.length, 24)

  const run = async (order: Op[], i: number) => {
    const key = `perm-${i}`
    const handle = k.config.value(key, { default: 'D' })
    const { changes } = record(handle)
    await handle.ready
    const state: { shared?: string; override?: string } = {}
    const expected: string[] = []
    let last = 'D'
    for (const op of order) {
      const shared = `${k.namespace}config/${key}`
      const override = `${k.namespace}config/orders/${key}`
      if (op === 'putShared') {
        state.shared = `s${i}`
        await etcdctl(['put', shared, state.shared])
      } else if (op === 'putOverride') {
        state.override = `o${i}`
        await etcdctl(['put', override, state.override])
      } else if (op === 'delShared') {
        delete state.shared
        await etcdctl(['del', shared])
      } else {
        delete state.override
        await etcdctl(['del', override])
      }
      const want = state.override ?? state.shared ?? 'D'
      if (want !== last) expected.push(want)
      last = want
      await eventually(() => handle.current === want, `${order.join(',')}: ${want} after ${op}`)
    }
    t.deepEqual(changes, expected, order.join(','))
    handle.close()
  }
  for (let i = 0; i < orders.length; i += 6)
    await Promise.all(orders.slice(i, i + 6).map((order, j) => run(order, i + j)))
})

test('without a default, deleting both keys makes current undefined; a kit without a service ignores overrides', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ service: 'orders' })
  await using shared = new EtcdKit({
    endpoints: [...k.endpoints],
    namespace: k.namespace,
    logger: silentLogger,
  })
  const mine = k.config.value('mode')
  const theirs = shared.config.value('mode')
  await Promise.all([mine.ready, theirs.ready])
  t.is(mine.current, undefined)
  await etcdctl(['put', `${k.namespace}config/mode`, 'shared'])
  await etcdctl(['put', `${k.namespace}config/orders/mode`, 'mine'])
  await eventually(() => mine.current === 'mine' && theirs.current === 'shared', 'override vs shared')
  await etcdctl(['del', `${k.namespace}config/orders/mode`])
  await eventually(() => mine.current === 'shared', 'fallback to shared')
  await etcdctl(['del', `${k.namespace}config/mode`])
  await eventually(() => mine.current === undefined && theirs.current === undefined, 'no key, no default')
})

test('many handles share ONE range read and ONE watch; later handles need no I/O', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit({ service: 'orders' })
  for (let i = 0; i < 5; i++) await etcdctl(['put', `${k.namespace}config/k${i}`, String(i)])
  await etcdctl(['put', `${k.namespace}config/orders/k0`, '100'])
  const kv = kitInternals(k).keyspace.kv
  const range = kv.range.bind(kv)
  let reads = 0
  kv.range = ((...args: Parameters<typeof range>) => {
    reads++
    return range(...args)
  }) as typeof kv.range

  const handles = Array.from({ length: 50 }, (_, i) =>
    k.config.value(`k${i}`, { parse: Number, default: -1 }),
  )
  const subtree = k.config.watch('')
  await Promise.all([...handles.map((h) => h.ready), subtree.ready])
  t.is(reads, 1)
  t.is(kitInternals(k).watchHub.size, 1)
  t.deepEqual(
    handles.slice(0, 6).map((h) => h.current),
    [100, 1, 2, 3, 4, -1],
  )
  const late = k.config.value('k3', { parse: Number })
  t.is(late.current, 3) // synchronously, from the shared read
  t.true(late.loaded)
  t.is(reads, 1)
  t.is(kitInternals(k).watchHub.size, 1)

  // the last handle closed stops the watch; the next one reads again
  for (const h of [...handles, late]) h.close()
  subtree.close()
  t.is(k.config.size, 0)
  t.is(kitInternals(k).watchHub.size, 0)
  const again = k.config.value('k4', { parse: Number })
  await again.ready
  t.is(again.current, 4)
  t.is(reads, 2)
})

test('a subtree watch yields puts for what exists, then every change with key, value, revision and type', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  await etcdctl(['put', `${k.namespace}config/db/host`, 'h1'])
  await etcdctl(['put', `${k.namespace}config/db/port`, '5432'])
  await etcdctl(['put', `${k.namespace}config/other`, 'x'])
  const db = k.config.watch('db/')
  const events: ConfigEvent[] = []
  db.on('change', (e) => events.push(e))
  await db.ready
  t.deepEqual(
    db.snapshot(),
    new Map([
      ['db/host', 'h1'],
      ['db/port', '5432'],
    ]),
  )
  const iterated: ConfigEvent[] = []
  const done = (async () => {
    for await (const e of db) {
      iterated.push(e)
      if (iterated.length === 5) break
    }
  })()
  await etcdctl(['put', `${k.namespace}config/db/host`, 'h2'])
  await etcdctl(['put', `${k.namespace}config/other`, 'y'])
  await etcdctl(['del', `${k.namespace}config/db/port`])
  await etcdctl(['put', `${k.namespace}config/db/user`, 'app'])
  await done
  t.deepEqual(
    iterated.map((e) => [e.type, e.key, e.value]),
    [
      ['put', 'db/host', 'h1'],
      ['put', 'db/port', '5432'],
      ['put', 'db/host', 'h2'],
      ['delete', 'db/port', undefined],
      ['put', 'db/user', 'app'],
    ],
  )
  t.deepEqual(
    events.map((e) => [e.type, e.key, e.value]),
    iterated.slice(2).map((e) => [e.type, e.key, e.value]),
  )
  const revisions = iterated.slice(2).map((e) => Number(e.revision))
  t.true(revisions[0]! < revisions[1]! && revisions[1]! < revisions[2]!)
  const json = await etcdctl(['get', `${k.namespace}config/db/user`, '-w', 'json'])
  t.is(String(/"mod_revision":(\d+)/.exec(json)?.[1]), iterated[4]!.revision)
})

test('a value is async iterable: current once read, then each change', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  await etcdctl(['put', `${k.namespace}config/n`, '1'])
  const n = k.config.value('n', { parse: Number, default: 0 })
  const seen: number[] = []
  const done = (async () => {
    for await (const v of n) {
      seen.push(v)
      if (v === 3) break
    }
  })()
  await n.ready
  await etcdctl(['put', `${k.namespace}config/n`, '2'])
  await etcdctl(['put', `${k.namespace}config/n`, '3'])
  await done
  t.deepEqual(seen, [1, 2, 3])
  n.close()
  const after: number[] = []
  for await (const v of n) after.push(v)
  t.deepEqual(after, [])
})

test('bad keys are refused with the key in the message', async (t) => {
  await using k = await kit()
  const bad: unknown[] = [
    '',
    '..',
    '../x',
    'a/../b',
    'a/./b',
    '/etc/passwd',
    'a//b',
    'a/',
    'tab\there',
    'nl\n',
    '\u007f',
    'x'.repeat(1025),
    '\ud800',
    5,
    null,
    undefined,
  ]
  for (const key of bad) {
    const e = t.throws(() => k.config.value(key as string), { instanceOf: InvalidArgumentError }, String(key))
    t.is(e?.code, 'ETCDKIT_INVALID_ARGUMENT')
    // a long value is echoed capped (issue 13: a 1 MB key must not make a 1 MB message)
    if (typeof key === 'string' && key.length > 150)
      t.true(e!.message.startsWith(`invalid config key "${key.slice(0, 150)}`) && e!.message.length < 500)
    else if (typeof key === 'string')
      t.true(e!.message.startsWith(`invalid config key ${JSON.stringify(key)}:`), e!.message)
    await t.throwsAsync(k.config.get(key as string), { instanceOf: InvalidArgumentError })
    await t.throwsAsync(k.config.set(key as string, 'v'), { instanceOf: InvalidArgumentError })
    await t.throwsAsync(k.config.delete(key as string), { instanceOf: InvalidArgumentError })
  }
  t.throws(() => k.config.watch('../'), {
    instanceOf: InvalidArgumentError,
    message: /invalid config subtree/,
  })
  t.throws(() => k.config.value('ok', { defualt: 1 } as never), { message: /unknown option "defualt"/ })
  t.throws(() => k.config.value('ok', { parse: 'Number' } as never), { message: /invalid parse "Number"/ })
  t.throws(() => new EtcdKit({ configPrefix: 'config' }), { message: /invalid configPrefix "config"/ })
  t.throws(() => new EtcdKit({ service: 'a/b' }), { message: /invalid service name "a\/b"/ })
  t.is(k.config.size, 0)
})

test('closing the kit closes its config handles; they keep their last value', async (t) => {
  const k = await kit()
  await k.config.set('z', '5')
  const z = k.config.value('z', { parse: Number })
  await z.ready
  let closed = false
  z.on('close', () => {
    closed = true
  })
  await k.close()
  t.true(closed)
  t.is(z.current, 5)
  t.is(kitInternals(k).watchHub.size, 0)
  t.throws(() => k.config.value('z'), { code: 'ETCDKIT_CLOSED' })
})

/** A logger that records warnings, to see the relist happen. */
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  return { ...silentLogger, warn: (_obj: unknown, msg?: string) => void warnings.push(String(msg)), warnings }
}

test.serial(
  'changes made while etcd was down arrive after reconnect, in order, the last one winning',
  async (t) => {
    await using cluster = await startEtcd({ members: 3 })
    const [mine, ...others] = cluster.members as [EtcdCluster['members'][number], ...EtcdCluster['members']]
    const via = others.map((m) => m.endpoint)
    await using k = new EtcdKit({
      endpoints: [mine.endpoint],
      namespace: 'down/',
      service: 'orders',
      logger: silentLogger,
    })
    const n = k.config.value('n', { parse: Number, default: 0 })
    const { changes } = record(n)
    await n.ready
    await etcdctl(via, ['put', 'down/config/n', '1'])
    await eventually(() => n.current === 1, 'first value')

    await mine.stop() // the member this kit talks to is down; the cluster keeps a quorum
    for (const [op, value] of [
      ['put', '2'],
      ['put', '3'],
      ['del', ''],
      ['put', '4'],
    ] as const) {
      await etcdctl(via, op === 'put' ? ['put', 'down/config/n', value] : ['del', 'down/config/n'])
    }
    await etcdctl(via, ['put', 'down/config/orders/n', '5'])
    await etcdctl(via, ['put', 'down/config/n', '6']) // overridden: no change
    t.is(n.current, 1)
    await mine.restart()
    await eventually(() => n.current === 5, 'the last value after reconnect')
    t.deepEqual(changes, [1, 2, 3, 0, 4, 5])
  },
)

test.serial('a watch whose revision was compacted reads the config again and ends correct', async (t) => {
  await using cluster = await startEtcd({ members: 3 })
  const [mine, ...others] = cluster.members as [EtcdCluster['members'][number], ...EtcdCluster['members']]
  const via = others.map((m) => m.endpoint)
  const logger = recordingLogger()
  await using k = new EtcdKit({ endpoints: [mine.endpoint], namespace: 'cmp/', logger })
  await etcdctl(via, ['put', 'cmp/config/a', '1'])
  await etcdctl(via, ['put', 'cmp/config/b', 'B'])
  const a = k.config.value('a', { parse: Number, default: 0 })
  const b = k.config.value('b', { default: 'none' })
  const all = k.config.watch()
  const events: ConfigEvent[] = []
  all.on('change', (e) => events.push(e))
  const aChanges = record(a).changes
  await Promise.all([a.ready, b.ready, all.ready])

  await mine.stop()
  await etcdctl(via, ['put', 'cmp/config/a', '2'])
  await etcdctl(via, ['put', 'cmp/config/a', '3'])
  await etcdctl(via, ['del', 'cmp/config/b'])
  await etcdctl(via, ['put', 'cmp/config/c', 'C'])
  await cluster.compact()
  await mine.restart()

  await eventually(() => a.current === 3 && b.current === 'none', 'the state after the relist')
  t.true(logger.warnings.some((w) => /config watch reset/.test(w)))
  // 1 from the first read; the intermediate 2 was compacted away: the relist gives the final state
  t.deepEqual(aChanges, [1, 3])
  t.deepEqual(
    events.map((e) => [e.type, e.key, e.value]),
    [
      ['delete', 'b', undefined],
      ['put', 'a', '3'],
      ['put', 'c', 'C'],
    ],
  )
  await etcdctl([mine.endpoint], ['put', 'cmp/config/a', '4'])
  await eventually(() => a.current === 4, 'the watch goes on after the relist')
  t.is(kitInternals(k).watchHub.size, 1)
})

test.serial('puts made right after an etcd restart arrive in order, the last one winning', async (t) => {
  await using cluster = await startEtcd()
  await using k = new EtcdKit({ endpoints: cluster.endpoints, namespace: 'rs/', logger: silentLogger })
  const v = k.config.value('v', { parse: Number, default: 0 })
  const { changes } = record(v)
  await v.ready
  await cluster.stop()
  await cluster.restart()
  for (let i = 1; i <= 5; i++) await cluster.etcdctl(['put', 'rs/config/v', String(i)])
  await eventually(() => v.current === 5, 'the last put')
  t.deepEqual(changes, [1, 2, 3, 4, 5])
})

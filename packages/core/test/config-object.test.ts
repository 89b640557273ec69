import test from 'ava'
import { z } from 'zod'
import { type ConfigObjectChange, InvalidArgumentError, type InvalidConfigValueError } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false
const expectType = <T extends true>(_: T) => {}

const Db = z.object({
  host: z.string(),
  port: z.coerce.number().int(),
  pool: z.object({ max: z.coerce.number().int().positive() }),
})

test('a three-key change written with setMany is seen by an object() reader as one change, never half', async (t) => {
  await using k = await kit()
  await k.config.setMany({ 'orders/db/host': 'h0', 'orders/db/port': '0', 'orders/db/pool/max': '1' })
  const db = k.config.object('orders/db/', { schema: Db })
  expectType<Equal<typeof db.current, z.infer<typeof Db> | undefined>>(true)
  const seen: Array<[z.infer<typeof Db>, ConfigObjectChange]> = []
  await db.ready
  db.on('change', (value, change) => seen.push([value!, change]))
  t.deepEqual(db.current, { host: 'h0', port: 0, pool: { max: 1 } })
  const rounds = 25
  const revisions: string[] = []
  for (let i = 1; i <= rounds; i++) {
    revisions.push(
      await k.config.setMany({
        'orders/db/host': `h${i}`,
        'orders/db/port': String(i),
        'orders/db/pool/max': String(i),
      }),
    )
  }
  await eventually(() => db.current?.port === rounds, 'the last change')
  t.is(seen.length, rounds, 'one change per txn')
  for (const [i, [value, change]] of seen.entries()) {
    t.deepEqual(value, { host: `h${i + 1}`, port: i + 1, pool: { max: i + 1 } }, 'never half a change')
    t.is(change.revision, revisions[i]!)
    t.deepEqual(change.keys, ['orders/db/host', 'orders/db/pool/max', 'orders/db/port'])
  }
  t.is(db.revision, revisions.at(-1))
})

test('a subtree the schema refuses keeps the last good object and reports the issues; deleting it gives the default', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const db = k.config.object('db', { schema: Db, default: { host: 'local', port: 1, pool: { max: 1 } } })
  expectType<Equal<typeof db.current, z.infer<typeof Db>>>(true)
  const invalid: InvalidConfigValueError[] = []
  db.on('invalid', (e) => invalid.push(e))
  await db.ready
  t.is(db.prefix, 'db/')
  t.deepEqual(db.current, { host: 'local', port: 1, pool: { max: 1 } })
  const rev = await k.config.setMany({ 'db/host': 'h', 'db/port': '5432', 'db/pool/max': '10' })
  await eventually(() => db.current.host === 'h', 'a good subtree')
  await etcdctl(['put', '--', `${k.namespace}config/db/pool/max`, '-5'])
  await eventually(() => invalid.length === 1, 'refused')
  t.deepEqual(
    invalid[0]!.issues.map((i) => i.path),
    [['pool', 'max']],
  )
  t.is(invalid[0]!.key, 'config/db/')
  t.regex(invalid[0]!.message, /revision \d+\): schema refused it: pool\.max: /)
  t.deepEqual(db.current, { host: 'h', port: 5432, pool: { max: 10 } })
  t.is(db.revision, rev)
  await etcdctl(['put', `${k.namespace}config/db/pool`, 'x']) // a value and a subtree at once
  await eventually(() => invalid.length === 2, 'refused shape')
  t.regex(invalid[1]!.message, /"db\/pool" is both a value and a subtree/)
  await k.config.setMany({ 'db/host': null, 'db/port': null, 'db/pool/max': null, 'db/pool': null })
  await eventually(() => db.current.host === 'local', 'the default once the subtree is gone')
  t.is(db.revision, undefined)
})

test('without a schema, object() gives the plain subtree; options are checked at the call', async (t) => {
  await using k = await kit()
  await k.config.setMany({ 'flags/a': 'true', 'flags/b/c': '{"x":1}' })
  const flags = k.config.object('flags/', { parse: JSON.parse })
  await flags.ready
  t.deepEqual(flags.current, { a: true, b: { c: { x: 1 } } })
  t.throws(() => k.config.object('x', { schema: 5 } as never), { instanceOf: InvalidArgumentError })
  t.throws(() => k.config.object('x', { defualt: 1 } as never), { message: /unknown option "defualt"/ })
  await t.throwsAsync(k.config.setMany({}), { instanceOf: InvalidArgumentError })
  await t.throwsAsync(k.config.setMany({ a: 5 as unknown as string }), { instanceOf: InvalidArgumentError })
})

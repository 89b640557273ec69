import test from 'ava'
import * as v from 'valibot'
import { z } from 'zod'
import {
  type ConfigValue,
  InvalidArgumentError,
  InvalidConfigValueError,
  type StandardSchemaV1,
} from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false
const expectType = <T extends true>(_: T) => {}

function record<T>(handle: ConfigValue<T>) {
  const changes: T[] = []
  const invalid: InvalidConfigValueError[] = []
  handle.on('change', (value) => changes.push(value))
  handle.on('invalid', (error) => invalid.push(error))
  return { changes, invalid }
}

const Limits = z.object({ max: z.number().int().positive(), burst: z.number().int().default(0) })

test('a zod schema types and validates a value; an invalid etcdctl put keeps the last good value and reports the issues', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const key = `${k.namespace}config/limits`
  const limits = k.config.value('limits', {
    parse: JSON.parse,
    schema: Limits,
    default: { max: 10, burst: 0 },
  })
  expectType<Equal<typeof limits.current, { max: number; burst: number }>>(true)
  const { changes, invalid } = record(limits)
  await limits.ready
  t.deepEqual(limits.current, { max: 10, burst: 0 })

  await etcdctl(['put', key, '{"max": 50}'])
  await eventually(() => limits.current.max === 50, 'a good value')
  t.deepEqual(limits.current, { max: 50, burst: 0 }) // the schema's output (its default applied)

  await etcdctl(['put', key, '{"max": -1, "burst": "x"}'])
  await eventually(() => invalid.length === 1, 'the refused value reported')
  const err = invalid[0]!
  t.true(err instanceof InvalidConfigValueError)
  t.is(err.code, 'ETCDKIT_INVALID_CONFIG_VALUE')
  t.is(err.key, 'config/limits')
  const json = await etcdctl(['get', key, '-w', 'json'])
  t.is(err.revision, /"mod_revision":(\d+)/.exec(json)?.[1])
  t.deepEqual(
    err.issues.map((i) => i.path),
    [['max'], ['burst']],
  )
  t.regex(err.message, /"config\/limits" \(revision \d+\): schema refused it: max: .+; burst: .+/)
  t.deepEqual(limits.current, { max: 50, burst: 0 })

  await etcdctl(['put', key, '{"max": 60, "burst": 5}'])
  await eventually(() => limits.current.max === 60, 'the fixed value')
  t.deepEqual(changes, [
    { max: 50, burst: 0 },
    { max: 60, burst: 5 },
  ])

  // without parse the schema sees the text; a coercing schema turns it into a number
  const rate = k.config.value('rate', { schema: z.coerce.number().int().min(1) })
  expectType<Equal<typeof rate.current, number | undefined>>(true)
  const rateSeen = record(rate)
  await rate.ready
  await etcdctl(['put', `${k.namespace}config/rate`, '250'])
  await eventually(() => rate.current === 250, 'a coerced number')
  await etcdctl(['put', `${k.namespace}config/rate`, '0'])
  await eventually(() => rateSeen.invalid.length === 1, 'a number below the minimum')
  t.is(rate.current, 250)
})

test('a valibot schema types and validates a value', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const Mode = v.picklist(['fast', 'safe'])
  const mode = k.config.value('mode', { schema: Mode, default: 'safe' })
  expectType<Equal<typeof mode.current, 'fast' | 'safe'>>(true)
  const Pool = v.pipe(v.string(), v.transform(Number), v.number(), v.integer(), v.minValue(1))
  const pool = k.config.value('pool', { schema: Pool, default: 4 })
  expectType<Equal<typeof pool.current, number>>(true)
  const seen = record(mode)
  const poolSeen = record(pool)
  await Promise.all([mode.ready, pool.ready])
  await etcdctl(['put', `${k.namespace}config/mode`, 'fast'])
  await etcdctl(['put', `${k.namespace}config/pool`, '8'])
  await eventually(() => mode.current === 'fast' && pool.current === 8, 'good values')
  await etcdctl(['put', `${k.namespace}config/mode`, 'reckless'])
  await etcdctl(['put', `${k.namespace}config/pool`, '2.5'])
  await eventually(() => seen.invalid.length === 1 && poolSeen.invalid.length === 1, 'refused values')
  t.is(mode.current, 'fast')
  t.is(pool.current, 8)
  t.regex(seen.invalid[0]!.message, /schema refused it: .*"fast" \| "safe"/)
  t.is(seen.invalid[0]!.issues.length, 1)
  t.is(poolSeen.invalid[0]!.issues.length, 1)
})

test('an async schema refuses every value with a clear reason; a non-schema is refused at the call', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const Slow = z.string().refine(async (s) => s.length > 0)
  const slow = k.config.value('slow', { schema: Slow, default: 'd' })
  const { invalid } = record(slow)
  await slow.ready
  await etcdctl(['put', `${k.namespace}config/slow`, 'x'])
  await eventually(() => invalid.length === 1, 'refused')
  t.regex(invalid[0]!.message, /validates asynchronously/)
  t.is(slow.current, 'd')
  t.throws(() => k.config.value('x', { schema: { parse: () => 1 } as unknown as StandardSchemaV1 }), {
    instanceOf: InvalidArgumentError,
    message: /invalid schema .*Standard Schema/,
  })
})

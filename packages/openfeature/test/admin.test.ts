import { ConfigConflictError, InvalidArgumentError, InvalidConfigValueError } from '@etcdkit/core'
import test from 'ava'
import { EtcdKitFlagProvider, FlagAdmin, rolloutFlag } from '../src/index.js'
import { etcd, flagsOf, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('set refuses what flagd schema refuses (nothing written), names the key and the problem', async (t) => {
  await using k = await kit()
  const admin = new FlagAdmin(k)
  const cases: Array<[unknown, RegExp]> = [
    [{ state: 'ON', variants: { on: true }, defaultVariant: 'on' }, /\/flags\/x\/state/],
    [{ state: 'ENABLED', variants: { on: true }, defaultVariant: 'missing' }, /Default variant missing/],
    [{ state: 'ENABLED', variants: { on: true, n: 1 }, defaultVariant: 'on' }, /must be boolean/],
    [
      { state: 'ENABLED', variants: { on: true }, defaultVariant: 'on', targeting: { nope: [1] } },
      /targeting/,
    ],
  ]
  for (const [definition, why] of cases) {
    const err = await t.throwsAsync(admin.set('x', definition as never))
    t.true(err instanceof InvalidConfigValueError, String(err))
    t.regex(err!.message, /"flags\/x"/)
    t.regex(err!.message, why)
  }
  t.is(await flagsOf(k).get('x'), undefined, 'nothing written')
  await t.throwsAsync(admin.set('a/b', { state: 'ENABLED', variants: { on: true }, defaultVariant: 'on' }), {
    instanceOf: InvalidArgumentError,
    message: /invalid flag key "a\/b"/,
  })
  await t.throwsAsync(
    admin.set('$evaluators', { state: 'ENABLED', variants: { on: true }, defaultVariant: 'on' }),
    {
      message: /reserved/,
    },
  )
  t.throws(() => new FlagAdmin(k, { prefx: 'x' } as never), { message: /unknown FlagAdmin option "prefx"/ })
  t.throws(() => rolloutFlag(101), { message: /invalid percent 101/ })
})

test('enable, disable, history with writer records, guarded rollback, list, get and delete', async (t) => {
  await using k = await kit({ service: 'ops-tool' })
  const admin = new FlagAdmin(k)
  const r1 = await admin.setBoolean('beta', false, { writer: 'alice' })
  await admin.enable('beta', { writer: 'bob' })
  await admin.disable('beta', { writer: 'carol' })
  const history = await admin.history('beta')
  t.deepEqual(
    history.map((h) => [h.writer?.writer, h.definition?.state, h.definition?.defaultVariant]),
    [
      ['carol', 'DISABLED', 'off'],
      ['bob', 'ENABLED', 'off'],
      ['alice', 'ENABLED', 'off'],
    ],
  )
  t.is(history[0]!.writer?.service, 'ops-tool')
  t.is(history[2]!.revision, r1)

  // a rollback checked against what the user looked at: refused once someone changed the flag meanwhile
  const seen = history[0]!.modRevision
  await admin.setBoolean('beta', true, { writer: 'dave' })
  await t.throwsAsync(admin.rollback('beta', r1, { writer: 'eve', expect: seen }), {
    instanceOf: ConfigConflictError,
  })
  const done = await admin.rollback('beta', r1, { writer: 'eve' })
  t.true(done.written)
  const [latest] = await admin.history('beta', { limit: 1 })
  t.is(latest!.writer?.rollbackOf, r1)
  t.like(latest!.definition, { state: 'ENABLED', defaultVariant: 'off' })

  // a definition written around the admin is listed with its error, and the admin will not roll back to it
  await flagsOf(k).set('raw', '{"state":"ENABLED"}')
  const rawRevision = (await admin.history('raw'))[0]!.revision
  await admin.setBoolean('raw', true)
  await t.throwsAsync(admin.rollback('raw', rawRevision), { instanceOf: InvalidConfigValueError })
  await flagsOf(k).set('raw', '{"state":"ENABLED"}')
  const list = await admin.list()
  t.deepEqual(
    list.map((f) => [f.key, f.definition === undefined ? 'invalid' : 'ok']),
    [
      ['beta', 'ok'],
      ['raw', 'invalid'],
    ],
  )
  t.regex(list[1]!.error!, /variants/)
  t.like(await admin.get('beta'), { key: 'beta', error: undefined })
  t.is(await admin.get('nope'), undefined)
  await t.throwsAsync(admin.enable('nope'), { message: /no flag "nope"/ })
  t.true(await admin.delete('beta'))
  t.false(await admin.delete('beta'))
})

test('a rollout 1% -> 10% -> 100%: the instances that are on stay on as it widens, in proportion', async (t) => {
  await using k = await kit()
  const admin = new FlagAdmin(k)
  const provider = new EtcdKitFlagProvider({ kit: k })
  await provider.initialize()
  const keys = Array.from({ length: 4_000 }, (_, i) => `orders/10.0.${i >> 8}.${i & 255}:3000`)
  const on = () =>
    new Set(
      keys.filter(
        (targetingKey) => provider.resolve('boolean', 'new-checkout', false, { targetingKey }).value,
      ),
    )
  let previous = new Set<string>()
  for (const percent of [1, 10, 100]) {
    // listening before the write: the change can arrive before the write's answer
    const changed = new Promise<void>((resolve) => provider.once('change', () => resolve()))
    await admin.rollout('new-checkout', percent, { writer: 'release' })
    await changed
    const now = on()
    t.log(`${percent}%: ${now.size} of ${keys.length} on`)
    t.true(
      Math.abs(now.size / keys.length - percent / 100) < 0.02 + percent / 500,
      `${percent}%: ${now.size}`,
    )
    for (const key of previous) t.true(now.has(key), `${key} stays on at ${percent}%`)
    previous = now
  }
  const deleted = new Promise<void>((resolve) => provider.once('change', () => resolve()))
  await admin.delete('new-checkout')
  await deleted
  t.is(on().size, 0)
  t.like(rolloutFlag(25, 'tenant').targeting, {
    fractional: [{ cat: [{ var: '$flagd.flagKey' }, { var: 'tenant' }] }, ['on', 2500], ['off', 7500]],
  })
  await provider.onClose()
})

test('list() is bounded while etcd does not answer; other calls by the kit callTimeout', async (t) => {
  await using k = await kit({ endpoints: ['127.0.0.1:1'], callTimeout: 300 })
  const admin = new FlagAdmin(k, { timeout: 300 })
  const started = Date.now()
  await t.throwsAsync(admin.list(), {
    code: 'ETCDKIT_ETCD_UNAVAILABLE',
    message: /did not answer within 300 ms/,
  })
  await t.throwsAsync(admin.get('x'))
  t.true(Date.now() - started < 5_000, `${Date.now() - started} ms`)
  t.throws(() => new FlagAdmin(k, { timeout: 0 }), { message: /invalid timeout 0/ })
})

test('enable/disable are compare-and-swap: a definition written between their read and their write is kept, not overwritten', async (t) => {
  await using k = await kit()
  await using other = await kit({ namespace: k.namespace })
  const admin = new FlagAdmin(k)
  await admin.set('checkout', { ...rolloutFlag(10), state: 'ENABLED' })
  const widened = rolloutFlag(50)
  // a concurrent writer: right after the admin's first read of the flag, another process widens it
  const full = `${k.namespace}flags/checkout`
  const kv = k.client.kv as unknown as { range: (...args: unknown[]) => Promise<unknown> }
  const range = kv.range.bind(kv)
  let raced = false
  kv.range = async (...args: unknown[]) => {
    const res = await range(...args)
    const req = args[0] as { key?: Buffer; revision?: string }
    if (!raced && req.key?.toString() === full && req.revision === undefined) {
      raced = true
      await new FlagAdmin(other).set('checkout', widened, { writer: 'other' })
    }
    return res
  }
  await admin.disable('checkout', { writer: 'ops' })
  t.true(raced, 'the concurrent write happened between the read and the write')
  const now = await admin.get('checkout')
  t.is(now?.definition?.state, 'DISABLED')
  t.deepEqual(now?.definition?.targeting, widened.targeting, 'the concurrent write is not lost')
  const history = await admin.history('checkout')
  t.deepEqual(
    history.map((h) => h.writer?.writer),
    ['ops', 'other', undefined],
  )

  // a writer that changes the flag between every read and write: a coded error, nothing of ours written
  let n = 0
  kv.range = async (...args: unknown[]) => {
    const res = await range(...args)
    const req = args[0] as { key?: Buffer; revision?: string }
    if (req.key?.toString() === full && req.revision === undefined)
      await new FlagAdmin(other).set('checkout', rolloutFlag(++n), { writer: 'other' })
    return res
  }
  const err = await t.throwsAsync(admin.enable('checkout', { writer: 'ops' }), {
    instanceOf: ConfigConflictError,
  })
  t.is((err as ConfigConflictError).code, 'ETCDKIT_CONFIG_CONFLICT')
  t.regex(err!.message, /flag "checkout" not enabled: it changed between each read and write/)
  kv.range = range
  t.is((await admin.get('checkout'))?.definition?.state, 'ENABLED', "the other writer's last definition")
  t.is((await admin.history('checkout', { limit: 1 }))[0]!.writer?.writer, 'other')
})

import { ErrorCode, type EventDetails, ProviderEvents, ProviderStatus } from '@openfeature/server-sdk'
import test from 'ava'
import { booleanFlag, EtcdKitFlagProvider } from '../src/index.js'
import { etcd, eventually, flagsOf, kit, provided, recordingLogger } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('resolves a flag from etcd; FLAG_NOT_FOUND, TYPE_MISMATCH, PARSE_ERROR, GENERAL and DISABLED with reasons', async (t) => {
  await using k = await kit()
  const { namespace } = k
  const admin = (await import('../src/index.js')).FlagAdmin
  const a = new admin(k)
  await a.setBoolean('on', true)
  await a.set('colour', { state: 'ENABLED', variants: { red: 'red', blue: 'blue' }, defaultVariant: 'red' })
  await a.set('off', { ...booleanFlag(true), state: 'DISABLED' })
  // targeting that names a variant the flag does not have: flagd-core's GENERAL
  await a.set('broken', { ...booleanFlag(true), targeting: { if: [true, 'missing', 'on'] } })
  // written around the admin (which validates): not JSON
  await (await etcd()).etcdctl(['put', `${namespace}flags/garbled`, '{"state": "ENAB'])
  const { client, provider } = await provided(k)
  t.is(client.providerStatus, ProviderStatus.READY)
  t.deepEqual(provider.flagKeys, ['broken', 'colour', 'off', 'on'])

  const on = await client.getBooleanDetails('on', false)
  t.like(on, { value: true, variant: 'on', reason: 'STATIC' })
  t.is(on.errorCode, undefined)

  const missing = await client.getBooleanDetails('nope', false)
  t.like(missing, { value: false, reason: 'ERROR', errorCode: ErrorCode.FLAG_NOT_FOUND })
  t.regex(missing.errorMessage ?? '', /flag "nope" is not defined in etcd \(no key "flags\/nope"\)/)

  const mismatch = await client.getNumberDetails('colour', 7)
  t.like(mismatch, { value: 7, reason: 'ERROR', errorCode: ErrorCode.TYPE_MISMATCH })

  const garbled = await client.getBooleanDetails('garbled', false)
  t.like(garbled, { value: false, reason: 'ERROR', errorCode: ErrorCode.PARSE_ERROR })
  t.regex(garbled.errorMessage ?? '', /no valid definition in etcd .*not JSON/)

  const broken = await client.getBooleanDetails('broken', false)
  t.like(broken, { value: false, reason: 'ERROR', errorCode: ErrorCode.GENERAL })
  t.regex(broken.errorMessage ?? '', /Variant 'missing' not found/)

  const disabled = await client.getBooleanDetails('off', false)
  t.like(disabled, { value: false, reason: 'DISABLED' })

  const str = await client.getStringDetails('colour', 'x')
  t.like(str, { value: 'red', variant: 'red', reason: 'STATIC' })
  await provider.onClose()
})

test('a change is seen by the next evaluation and emits PROVIDER_CONFIGURATION_CHANGED with flagsChanged (one event per txn)', async (t) => {
  await using k = await kit()
  const { client, admin } = await provided(k)
  const events: EventDetails[] = []
  client.addHandler(ProviderEvents.ConfigurationChanged, (d) => void events.push(d!))
  t.false(await client.getBooleanValue('checkout', false))

  await admin.setBoolean('checkout', true)
  await eventually(() => events.length === 1, 'the change event')
  t.deepEqual(events[0]!.flagsChanged, ['checkout'])
  t.true(await client.getBooleanValue('checkout', false))

  await admin.disable('checkout', { writer: 'ops' })
  await eventually(() => events.length === 2, 'the second change event')
  t.deepEqual(events[1]!.flagsChanged, ['checkout'])
  t.like(await client.getBooleanDetails('checkout', false), { value: false, reason: 'DISABLED' })

  // two flags in one txn: one event naming both
  await flagsOf(k).setMany({
    a: JSON.stringify(booleanFlag(true)),
    b: JSON.stringify(booleanFlag(false)),
  })
  await eventually(() => events.length === 3, 'the txn event')
  t.deepEqual(events[2]!.flagsChanged, ['a', 'b'])
  // a put of the same definition changes nothing: no event
  await admin.setBoolean('a', true)
  await admin.setBoolean('b', true)
  await eventually(() => events.length === 4, 'b changed')
  t.deepEqual(events[3]!.flagsChanged, ['b'])
})

test('an invalid definition keeps the last good one, and is logged, emitted and resolved from the good one', async (t) => {
  const logger = recordingLogger()
  await using k = await kit({ logger })
  const { client, provider, admin } = await provided(k)
  await admin.set('limit', { state: 'ENABLED', variants: { low: 10, high: 100 }, defaultVariant: 'high' })
  await eventually(async () => (await client.getNumberValue('limit', 0)) === 100, 'the first definition')
  const invalid: Error[] = []
  provider.on('invalid', (err) => invalid.push(err))
  const changed: string[][] = []
  provider.on('change', (flags) => changed.push(flags))

  // a variant of another type: flagd's schema refuses it; the admin refuses to write it
  const bad = { state: 'ENABLED', variants: { low: 10, high: 'lots' }, defaultVariant: 'high' } as const
  const refused = await t.throwsAsync(admin.set('limit', bad))
  t.is((refused as { code?: string }).code, 'ETCDKIT_INVALID_CONFIG_VALUE')
  t.regex(refused!.message, /variants\/high must be number/)
  // written around the admin: refused by the provider, the last good definition stays
  await flagsOf(k).set('limit', JSON.stringify(bad))
  await eventually(() => invalid.length === 1, 'the invalid event')
  t.regex(invalid[0]!.message, /flags\/limit.*last good definition stays in force/)
  t.true(
    logger.warnings.some((w) => /flags\/limit/.test(w)),
    'logged',
  )
  t.like(await client.getNumberDetails('limit', 0), { value: 100, variant: 'high' })
  t.deepEqual(changed, [])

  // a good one again
  await admin.set('limit', { state: 'ENABLED', variants: { low: 10, high: 100 }, defaultVariant: 'low' })
  await eventually(async () => (await client.getNumberValue('limit', 0)) === 10, 'the next good definition')
  t.deepEqual(changed, [['limit']])
})

test('a deleted flag resolves FLAG_NOT_FOUND saying it was deleted; a new definition brings it back', async (t) => {
  await using k = await kit()
  const { client, admin } = await provided(k)
  await admin.setBoolean('beta', true)
  await eventually(async () => await client.getBooleanValue('beta', false), 'on')
  const changes: EventDetails[] = []
  client.addHandler(ProviderEvents.ConfigurationChanged, (d) => void changes.push(d!))
  t.true(await admin.delete('beta'))
  await eventually(() => changes.length === 1, 'the change event')
  t.deepEqual(changes[0]!.flagsChanged, ['beta'])
  const gone = await client.getBooleanDetails('beta', false)
  t.like(gone, { value: false, reason: 'ERROR', errorCode: ErrorCode.FLAG_NOT_FOUND })
  t.regex(gone.errorMessage ?? '', /flag "beta" was deleted from etcd \("flags\/beta", revision \d+\)/)
  await admin.setBoolean('beta', true)
  await eventually(async () => await client.getBooleanValue('beta', false), 'back')
})

test('the evaluation context carries the instance (service, zone, version, metadata, targetingKey); the caller wins', async (t) => {
  await using k = await kit({ service: 'orders' })
  const registration = await k.register({
    service: 'orders',
    address: '127.0.0.1:3001',
    metadata: { zone: 'eu-1', version: '1.4.0', tags: ['canary'], team: 'core' },
  })
  const { client, admin } = await provided(k, { registration })
  await admin.set('zone-rule', {
    ...booleanFlag(false),
    targeting: { if: [{ '==': [{ var: 'zone' }, 'eu-1'] }, 'on', 'off'] },
  })
  await admin.set('version-rule', {
    ...booleanFlag(false),
    targeting: { if: [{ sem_ver: [{ var: 'version' }, '>=', '1.2.0'] }, 'on', 'off'] },
  })
  await admin.set('who', {
    state: 'ENABLED',
    variants: { me: 'me', other: 'other' },
    defaultVariant: 'other',
    targeting: {
      if: [
        {
          and: [
            { '==': [{ var: 'targetingKey' }, 'orders/127.0.0.1:3001'] },
            { '==': [{ var: 'service' }, 'orders'] },
            { '==': [{ var: 'metadata.team' }, 'core'] },
          ],
        },
        'me',
        'other',
      ],
    },
  })
  await eventually(async () => (await client.getStringValue('who', '')) === 'me', 'the instance context')
  t.true(await client.getBooleanValue('zone-rule', false))
  t.true(await client.getBooleanValue('version-rule', false))
  // the caller's context wins
  t.false(await client.getBooleanValue('zone-rule', true, { zone: 'us-1' }))
  t.is(await client.getStringValue('who', '', { targetingKey: 'user-7' }), 'other')
  // a rule the analysis of instance reads does not follow (`missing`) still gets every fact
  await admin.set('no-zone', {
    ...booleanFlag(false),
    targeting: { if: [{ missing: ['zone'] }, 'on', 'off'] },
  })
  // and a shared evaluator ($ref) reading the zone gets it
  await flagsOf(k).set('$evaluators', JSON.stringify({ inEu: { '==': [{ var: 'zone' }, 'eu-1'] } }))
  await admin.set('ref-rule', { ...booleanFlag(false), targeting: { if: [{ $ref: 'inEu' }, 'on', 'off'] } })
  await eventually(async () => await client.getBooleanValue('ref-rule', false), 'the $ref rule')
  t.false(await client.getBooleanValue('no-zone', true), 'the zone is there')
})

test('options are checked: unknown keys, a bad prefix or timeout are refused at construction', async (t) => {
  await using k = await kit()
  t.throws(() => new EtcdKitFlagProvider({ kit: k, prefx: 'x' } as never), {
    message: /unknown EtcdKitFlagProvider option "prefx"/,
  })
  t.throws(() => new EtcdKitFlagProvider({ kit: k, prefix: '/abs/' }), {
    message: /invalid flags prefix "\/abs\/"/,
  })
  t.throws(() => new EtcdKitFlagProvider({ kit: k, timeout: -1 }), { message: /invalid timeout -1/ })
  t.throws(() => new EtcdKitFlagProvider({ kit: {} as never }), { message: /expected an EtcdKit/ })
})

test('initialize is bounded: etcd unreachable and no cache -> rejects in time; evaluations say PROVIDER_NOT_READY', async (t) => {
  await using k = await kit({ endpoints: ['127.0.0.1:1'] })
  const provider = new EtcdKitFlagProvider({ kit: k, timeout: 300 })
  const started = Date.now()
  await t.throwsAsync(provider.initialize(), { message: /not read within 300 ms/ })
  t.true(Date.now() - started < 2_000)
  t.is(provider.state, 'error')
  t.like(provider.resolve('boolean', 'x', false), { errorCode: ErrorCode.PROVIDER_NOT_READY })
  await provider.onClose()
})

test('the kit closed under the provider: PROVIDER_STALE, and the last definitions keep answering', async (t) => {
  const k = await kit()
  const { client, admin, provider } = await provided(k)
  await admin.setBoolean('kept', true)
  await eventually(async () => await client.getBooleanValue('kept', false), 'the flag')
  const stale: EventDetails[] = []
  client.addHandler(ProviderEvents.Stale, (d) => void stale.push(d!))
  await k.close()
  await eventually(() => stale.length === 1, 'PROVIDER_STALE')
  t.regex(stale[0]!.message ?? '', /the kit was closed/)
  t.is(provider.state, 'stale')
  t.true(await client.getBooleanValue('kept', false))
  await provider.onClose()
})

test('flags live at {namespace}flags/{key}: one put there is evaluated, and a config service named "flags" does not see them', async (t) => {
  await using k = await kit({ service: 'flags' })
  const { namespace } = k
  // written around etcdkit, where DESIGN.md puts a flag
  await (await etcd()).etcdctl([
    'put',
    `${namespace}flags/dark-mode`,
    JSON.stringify({ state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' }),
  ])
  const { client, provider } = await provided(k)
  t.deepEqual(provider.flagKeys, ['dark-mode'])
  t.like(await client.getBooleanDetails('dark-mode', false), { value: true, variant: 'on' })
  t.is(provider.keyOf('dark-mode'), 'flags/dark-mode')

  // the kit's own service is "flags": its overrides are config/flags/{key}, and no flag is one of them
  const value = k.config.value('dark-mode')
  await value.ready
  t.is(value.current, undefined, 'a flag is not a config override of the service "flags"')
  const all = k.config.watch()
  await all.ready
  t.deepEqual([...all.snapshot().keys()], [], 'the config prefix holds no flag')
  // and a config key below config/flags/ is not a flag
  await k.config.set('flags/not-a-flag', JSON.stringify(booleanFlag(true)))
  await k.config.set('flags/dark-mode', JSON.stringify(booleanFlag(false)))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.deepEqual(provider.flagKeys, ['dark-mode'])
  t.true(await client.getBooleanValue('dark-mode', false))
  all.close()
  value.close()
  await provider.onClose()
})

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { prefixConfig } from '../src/integration/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('prefixConfig: the config machinery on another prefix, without overrides, one per prefix, with its own cache file, closed with the kit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'etcdkit-prefix-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { endpoints } = await etcd()
  const k = new EtcdKit({
    endpoints,
    namespace: `prefix-${process.pid}/`,
    service: 'flags',
    logger: silentLogger,
    configCache: { dir, wait: 5_000 },
  })
  t.teardown(() => k.close())
  const flags = prefixConfig(k, 'flags/')
  t.is(prefixConfig(k, 'flags/'), flags, 'one per prefix')
  t.not(flags.cacheFile, k.config.cacheFile)
  t.throws(() => prefixConfig(k, 'flags'), {
    message: /invalid prefix "flags": expected a key prefix ending in "\/"/,
  })
  t.throws(() => prefixConfig(k, ''), { message: /invalid prefix ""/ })

  const r = await flags.set('x', 'on', { writer: 'alice' })
  const watch = flags.watch()
  await watch.ready
  t.deepEqual([...watch.snapshot()], [['x', 'on']])
  const [h] = await flags.history('x')
  t.like(h, { key: 'flags/x', revision: r, writer: { writer: 'alice', service: 'flags' } })
  // the service "flags" of the config prefix sees none of it
  const value = k.config.value('x')
  await value.ready
  t.is(value.current, undefined)
  const seen: string[] = []
  watch.on('change', (e) => seen.push(`${e.key}=${e.value}`))
  await k.config.set('flags/x', 'config') // the service's override, not the flag
  await flags.set('x', 'off')
  await eventually(() => seen.length === 1, 'the change')
  t.deepEqual(seen, ['x=off'])
  t.true(
    k.health().views.some((v) => v.name === 'flags/*'),
    'named with its prefix in health',
  )

  let closed = false
  watch.on('close', () => {
    closed = true
  })
  await k.close()
  t.true(closed, "the kit's close() closes it")
  t.throws(() => prefixConfig(k, 'other/'), { message: /closed/ })
  value.close()
})

test('prefixConfig: a kit without a service has no service in writer records', async (t) => {
  await using k = await kit()
  const flags = prefixConfig(k, 'flags/')
  await flags.set('y', '1')
  const [h] = await flags.history('y')
  t.is(h?.writer?.service, undefined)
  t.is(await k.config.get('flags/y'), undefined)
})

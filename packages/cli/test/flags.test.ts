import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prefixConfig } from '@etcdkit/core/integration'
import { EtcdKitFlagProvider } from '@etcdkit/openfeature'
import { eventually } from '@etcdkit/testing'
import test from 'ava'
import { etcd, scene } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('flags: set (on, n%, variants, a flagd file), list, get, enable/disable, history with the CLI writer, rollback, delete; a provider sees each write', async (t) => {
  const s = await scene(t, 'cli-flags')
  const provider = new EtcdKitFlagProvider({ kit: s.kit(), instanceId: 'orders/10.0.0.1:80' })
  t.teardown(() => provider.onClose())
  await provider.initialize()

  t.like(await s.cli('flags', 'set', 'checkout', 'on'), { code: 0 })
  t.like(await s.cli('flags', 'set', 'beta', '25%'), { code: 0 })
  t.like(await s.cli('flags', 'set', 'colour', 'variants:red,blue'), { code: 0 })
  const dir = mkdtempSync(join(tmpdir(), 'etcdkit-cli-flags-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'flags.json')
  writeFileSync(
    file,
    JSON.stringify({
      flags: {
        zoned: {
          state: 'ENABLED',
          variants: { on: true, off: false },
          defaultVariant: 'off',
          targeting: { if: [{ '==': [{ var: 'zone' }, 'eu-1'] }, 'on', 'off'] },
        },
      },
    }),
  )
  t.like(await s.cli('flags', 'set', 'zoned', file), { code: 0 })
  // refused by flagd's schema: exit 1, the problem named, nothing written
  const bad = await s.cli(
    'flags',
    'set',
    'broken',
    '{"state":"ENABLED","variants":{"a":1,"b":"x"},"defaultVariant":"a"}',
  )
  t.is(bad.code, 1)
  t.regex(bad.stderr, /at "flags\/broken".*must be number/)

  const list = await s.cli('flags', 'list')
  t.is(list.code, 0)
  t.regex(list.stdout, /beta\s+ENABLED\s+off\s+on,off\s+\{"fractional":\[\["on",2500\],\["off",7500\]\]\}/)
  t.regex(list.stdout, /colour\s+ENABLED\s+red\s+red,blue/)
  t.notRegex(list.stdout, /broken/)
  await eventually(() => provider.flagKeys.length === 4, 'the provider has the 4 flags')
  t.true(provider.resolve<boolean>('boolean', 'checkout', false).value)
  t.is(provider.resolve<string>('string', 'colour', '').value, 'red')
  t.false(provider.resolve<boolean>('boolean', 'zoned', true).value)
  t.true(provider.resolve<boolean>('boolean', 'zoned', false, { zone: 'eu-1' }).value)

  t.like(await s.cli('flags', 'disable', 'checkout'), { code: 0 })
  const got = await s.cli('flags', 'get', 'checkout', '--json')
  t.like(JSON.parse(got.stdout), { key: 'checkout', definition: { state: 'DISABLED' } })
  t.like(await s.cli('flags', 'enable', 'checkout'), { code: 0 })
  const history = JSON.parse((await s.cli('flags', 'history', 'checkout', '--json')).stdout) as Array<{
    revision: string
    writer?: { writer?: string }
    definition?: { state: string }
  }>
  t.deepEqual(
    history.map((h) => h.definition?.state),
    ['ENABLED', 'DISABLED', 'ENABLED'],
  )
  t.regex(history[0]!.writer?.writer ?? '', /^etcdkit-cli:/)
  const back = await s.cli('flags', 'rollback', 'checkout', history[1]!.revision)
  t.is(back.code, 0, back.stderr)
  t.regex(back.stdout, /holds the definition of revision \d+ again/)
  const table = await s.cli('flags', 'history', 'checkout')
  t.regex(table.stdout, /rollback of \d+/)

  t.like(await s.cli('flags', 'delete', 'colour'), { code: 0 })
  t.like(await s.cli('flags', 'delete', 'colour'), { code: 1 })
  t.like(await s.cli('flags', 'get', 'colour'), { code: 1 })
  // text from etcd that is not a definition is shown escaped: no terminal escape, no forged line
  await prefixConfig(s.kit(), 'flags/').set('evil', '\u001b[2J{"state":\n"ENABLED"')
  const evil = await s.cli('flags', 'get', 'evil')
  t.is(evil.code, 1)
  t.false(`${evil.stdout}${evil.stderr}`.includes('\u001b'), evil.stdout)
  t.regex(evil.stdout, /\\(e|x1b)\[2J\{"state":\\n"ENABLED"/)
  const listed = await s.cli('flags', 'list')
  t.false(listed.stdout.includes('\u001b'))
  t.regex(listed.stdout, /evil\s+INVALID/)
  const usage = await s.cli('flags', 'nope')
  t.is(usage.code, 2)
  t.regex(usage.stderr, /unknown flags command "nope"/)
})

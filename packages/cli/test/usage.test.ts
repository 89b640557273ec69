// What --help and the usage errors say: every flag and every config subcommand the CLI takes.
import test from 'ava'
import { cli, etcd, scene } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('--help names every flag the CLI takes, --expect included, and that mutual TLS needs --cacert', async (t) => {
  const { stdout, code } = await cli(['--help'])
  t.is(code, 0)
  for (const flag of [
    '--expect',
    '--limit',
    '--service',
    '--dialect',
    '--json',
    '--cacert',
    '--cert',
    '--key',
  ])
    t.true(stdout.includes(flag), `--help omits ${flag}`)
  t.regex(stdout, /--cert[^\n]*--cacert/, 'the --cert line says it needs --cacert')
})

test('`etcdkit config` with no subcommand lists every config subcommand', async (t) => {
  const s = await scene(t, 'cli-usage')
  const { stderr, code } = await s.cli('config')
  t.is(code, 2)
  t.regex(stderr, /usage: etcdkit config get\|set\|delete\|list\|history\|rollback/)
})

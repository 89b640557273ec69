// `etcdkit services` under a least-privilege role: a dialect's root the role may not read is left out and
// said on stderr when every dialect is listed, and fails the command when it is asked for by name.
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { cli } from './helpers.js'

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd({ auth: true })
})
test.after.always(() => etcd?.close())

test('services with a role that reads only the etcd registry: the other dialects are left out, each said on stderr; --dialect kratos is refused', async (t) => {
  const namespace = uniquePrefix('cli-roles')
  const root = new EtcdKit({
    endpoints: etcd.endpoints,
    namespace,
    auth: etcd.auth!.root,
    logger: silentLogger,
  })
  t.teardown(() => root.close())
  await root.register({ service: 'orders', address: '10.0.0.7:3000', dialects: ['etcd', 'kratos'] })
  const user = await etcd.auth!.user(`services-reader-${process.pid}`, [
    { prefix: `${namespace}services/`, permission: 'read' },
    { prefix: `${namespace}sessions/`, permission: 'read' },
  ])
  const as = (...args: string[]) =>
    cli(
      ['--endpoints', etcd.endpoints.join(','), '--namespace', namespace, '--user', user.username, ...args],
      {
        ETCDKIT_PASSWORD: user.password,
      },
    )
  const all = await as('services')
  t.is(all.code, 0, all.stderr)
  t.regex(all.stdout, /^orders\s+etcd\s+1$/m)
  t.regex(all.stdout, /^orders\s+etcd\s+10\.0\.0\.7:3000\s/m)
  t.false(all.stdout.includes('kratos'))
  for (const [dialect, root] of [
    ['kratos', '/microservices/'],
    ['kitex', 'kitex/registry-etcd/'],
    ['hertz', 'hertz/registry-etcd/'],
    ['go-micro', '/micro/registry/'],
  ])
    t.true(
      all.stderr.includes(`etcdkit: the ${dialect} registry (${root}) is not listed: `),
      `${dialect} said: ${all.stderr}`,
    )
  t.regex(all.stderr, /permission denied/i)

  const kratos = await as('services', '--dialect', 'kratos')
  t.is(kratos.code, 1)
  t.regex(kratos.stderr, /permission denied/i)
})

test('what the CLI writes is recorded as the etcd user it writes as: config set and flags set with --user', async (t) => {
  const namespace = uniquePrefix('cli-writer')
  const user = await etcd.auth!.user(`cli-writer-${process.pid}`, [
    { prefix: namespace, permission: 'readwrite' },
  ])
  const as = (...args: string[]) =>
    cli(
      ['--endpoints', etcd.endpoints.join(','), '--namespace', namespace, '--user', user.username, ...args],
      { ETCDKIT_PASSWORD: user.password },
    )
  const set = await as('config', 'set', 'rate-limit', '100')
  t.is(set.code, 0, set.stderr)
  const flag = await as('flags', 'set', 'dark', 'on')
  t.is(flag.code, 0, flag.stderr)
  const writerOf = async (...args: string[]) => {
    const out = await as(...args, '--json')
    t.is(out.code, 0, out.stderr)
    return (JSON.parse(out.stdout) as Array<{ writer?: { writer?: string } }>)[0]?.writer?.writer
  }
  t.is(await writerOf('config', 'history', 'rate-limit'), `etcdkit-cli:${user.username}`)
  t.is(await writerOf('flags', 'history', 'dark'), `etcdkit-cli:${user.username}`)
})

import { setTimeout as sleep } from 'node:timers/promises'
import { eventually, spawnEtcdctl } from '@etcdkit/testing'
import test from 'ava'
import { cli, scene, spawnCli } from './helpers.js'

test('services: a table of services and instances, Go-format and seed-format registrations alike, and --json', async (t) => {
  const s = await scene(t, 'cli-services')
  const kit = s.kit()
  await kit.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0', weight: 2, zone: 'eu-1' },
  })
  await kit.register({ service: 'orders', address: '10.0.0.8:3000' })
  // the seed's format: a bare host:port, on a lease of its own
  const lease = (await s.kitEtcdctl(['lease', 'grant', '60'])).match(/lease ([0-9a-f]+) granted/)![1]!
  await s.kitEtcdctl(['put', `${s.namespace}services/legacy/10.0.0.9:80`, '10.0.0.9:80', `--lease=${lease}`])

  const all = await s.cli('services')
  t.is(all.code, 0, all.stderr)
  const lines = all.stdout.split('\n')
  t.regex(lines[0]!, /^SERVICE\s+DIALECT\s+INSTANCES$/)
  t.true(lines.some((l) => /^legacy\s+etcd\s+1$/.test(l)))
  t.true(lines.some((l) => /^orders\s+etcd\s+2$/.test(l)))
  t.regex(all.stdout, /orders\s+etcd\s+10\.0\.0\.7:3000\s+2\s+1\.4\.0\s+eu-1\s+\d+s\s+/)
  t.regex(all.stdout, /legacy\s+etcd\s+10\.0\.0\.9:80\s+1\s+\d+s\s+unknown/)

  const one = await s.cli('services', 'orders', '--json')
  t.is(one.code, 0, one.stderr)
  const rows = JSON.parse(one.stdout) as {
    service: string
    address: string
    weight: number
    lease: string
    ttl: number
    metadata: object
  }[]
  t.deepEqual(
    rows.map((r) => [r.service, r.address, r.weight]),
    [
      ['orders', '10.0.0.7:3000', 2],
      ['orders', '10.0.0.8:3000', 1],
    ],
  )
  t.deepEqual(rows[0]!.metadata, { version: '1.4.0', weight: 2, zone: 'eu-1' })
  t.is(rows[0]!.lease, kit.session.lease!.hex)
  t.true(rows[0]!.ttl > 0 && rows[0]!.ttl <= 10)

  const none = await s.cli('services', 'nothing-here')
  t.is(none.code, 0)
  t.regex(none.stdout, /no instances of "nothing-here"/)
})

test('locks and elections: holder first, then waiters in queue order; etcdctl holders listed as unknown', async (t) => {
  const s = await scene(t, 'cli-locks')
  const ctl = spawnEtcdctl(s.endpoints, ['lock', `${s.namespace}jobs/report`])
  t.teardown(() => ctl.stop())
  await ctl.waitForLine((l) => l.startsWith(`${s.namespace}jobs/report/`))
  const a = s.kit()
  const b = s.kit()
  const waitA = a.lock('jobs/report').acquire()
  await eventually(
    async () => (await s.cli('locks', '--json')).stdout.includes(a.session.lease?.hex ?? '-'),
    'a queued',
  )
  const waitB = b.lock('jobs/report').acquire()
  await eventually(
    async () => (await s.cli('locks', '--json')).stdout.includes(b.session.lease?.hex ?? '-'),
    'b queued',
  )
  const leader = await a.election('leader/scheduler').campaign('node-a')

  const locks = await s.cli('locks', '--json')
  t.is(locks.code, 0, locks.stderr)
  const [queue] = JSON.parse(locks.stdout) as {
    name: string
    kind: string
    contenders: { lease: string; process: unknown }[]
  }[]
  t.is(queue!.name, 'jobs/report')
  t.is(queue!.kind, 'lock')
  t.is(queue!.contenders.length, 3)
  t.is(queue!.contenders[0]!.process, 'unknown') // etcdctl holds it
  t.deepEqual(
    queue!.contenders.slice(1).map((c) => c.lease),
    [a.session.lease!.hex, b.session.lease!.hex],
  )
  const table = (await s.cli('locks')).stdout
  t.regex(table, /^LOCK\s+ROLE\s+LEASE\s+REVISION\s+PROCESS$/m)
  t.regex(table, /^jobs\/report\s+holder\s+[0-9a-f]+\s+\d+\s+unknown$/m)
  t.regex(table, new RegExp(`^\\s+waiting #1\\s+${a.session.lease!.hex}\\s`, 'm'))
  t.regex(table, new RegExp(`^\\s+waiting #2\\s+${b.session.lease!.hex}\\s`, 'm'))

  const elections = await s.cli('elections')
  t.regex(
    elections.stdout,
    new RegExp(`^leader/scheduler\\s+leader\\s+${a.session.lease!.hex}\\s+\\d+\\s+\\S.*node-a$`, 'm'),
  )
  t.notRegex(elections.stdout, /jobs\/report/)

  await ctl.stop()
  await (await waitA).release()
  await (await waitB).release()
  await leader.resign()
  await eventually(async () => (await s.cli('locks')).stdout.trim() === '(no locks)', 'no locks left')
})

test('config: set, get, list (overrides attributed to registered services), delete; a missing key exits 1', async (t) => {
  const s = await scene(t, 'cli-config')
  await s.kit().register({ service: 'orders', address: '127.0.0.1:3000' })
  t.is((await s.cli('config', 'set', 'rate-limit', '100')).code, 0)
  t.is((await s.cli('config', 'set', 'rate-limit', '250', '--service', 'orders')).code, 0)
  t.is(
    (await s.kitEtcdctl(['get', '--print-value-only', `${s.namespace}config/orders/rate-limit`])).trim(),
    '250',
  )
  const got = await s.cli('config', 'get', 'rate-limit', '--service', 'orders')
  t.is(got.stdout, '250\n')
  const list = await s.cli('config', 'list', '--json')
  t.deepEqual(JSON.parse(list.stdout), [
    { key: 'orders/rate-limit', value: '250', service: 'orders' },
    { key: 'rate-limit', value: '100' },
  ])
  t.regex((await s.cli('config', 'list')).stdout, /^orders\/rate-limit\s+orders\s+250$/m)
  t.is((await s.cli('config', 'delete', 'rate-limit')).code, 0)
  const missing = await s.cli('config', 'get', 'rate-limit')
  t.is(missing.code, 1)
  t.regex(missing.stderr, /config key "rate-limit" does not exist/)
  t.is((await s.cli('config', 'delete', 'rate-limit')).code, 1)
})

test('config history lists every value etcd keeps, with the writer; rollback writes one back, and is refused when the key changed meanwhile', async (t) => {
  const s = await scene(t, 'cli-history')
  t.is((await s.cli('config', 'set', 'rate-limit', '100')).code, 0)
  await s.kitEtcdctl(['put', `${s.namespace}config/rate-limit`, '150']) // not through etcdkit: writer unknown
  t.is((await s.cli('config', 'set', 'rate-limit', '250')).code, 0)

  const history = await s.cli('config', 'history', 'rate-limit', '--json')
  t.is(history.code, 0, history.stderr)
  const entries = JSON.parse(history.stdout) as {
    value: string
    revision: string
    writer?: { writer?: string }
  }[]
  t.deepEqual(
    entries.map((e) => e.value),
    ['250', '150', '100'],
  )
  t.regex(entries[0]!.writer?.writer ?? '', /^etcdkit-cli:/)
  t.is(entries[1]!.writer, undefined)
  const table = (await s.cli('config', 'history', 'rate-limit')).stdout
  t.regex(table, /^REVISION\s+VERSION\s+TIME\s+WRITER\s+VALUE$/m)
  t.regex(table, new RegExp(`^${entries[1]!.revision}\\s+2\\s+unknown\\s+150$`, 'm'))

  const back = await s.cli('config', 'rollback', 'rate-limit', entries[2]!.revision)
  t.is(back.code, 0, back.stderr)
  t.regex(back.stdout, new RegExp(`rate-limit holds the value of revision ${entries[2]!.revision} again`))
  t.is((await s.cli('config', 'get', 'rate-limit')).stdout, '100\n')

  // a rollback that expects the key as it was before someone else changed it is refused
  const seen = (
    JSON.parse((await s.cli('config', 'history', 'rate-limit', '--json')).stdout) as { revision: string }[]
  )[0]!
  await s.kitEtcdctl(['put', `${s.namespace}config/rate-limit`, '999'])
  const refused = await s.cli(
    'config',
    'rollback',
    'rate-limit',
    entries[0]!.revision,
    '--expect',
    seen.revision,
  )
  t.is(refused.code, 1)
  t.regex(refused.stderr, /ETCDKIT_CONFIG_CONFLICT/)
  t.is((await s.cli('config', 'get', 'rate-limit')).stdout, '999\n')
  t.is((await s.cli('config', 'history', 'rate-limit', '--limit', 'x')).code, 2)
})

test('bad usage exits 2 naming what is wrong; an unreachable etcd exits 1 in bounded time', async (t) => {
  const cases: [string[], RegExp][] = [
    [['nope'], /unknown command "nope"/],
    [['services', '--bogus'], /Unknown option '--bogus'/],
    [['config'], /usage: etcdkit config get\|set\|delete\|list/],
    [['config', 'frob'], /unknown config command "frob"/],
    [['config', 'get'], /usage: etcdkit config get <key>/],
    [['config', 'get', '../x'], /invalid config key/],
    [['services', '--timeout', 'soon'], /--timeout "soon": expected milliseconds/],
    [['services', '--cert', 'c.pem'], /--cert and --key go together/],
    [['services', '--cacert', '/no/such/ca.pem'], /--cacert "\/no\/such\/ca.pem": ENOENT/],
    [['watch', 'everything'], /watch what\? "everything"/],
    [['console', '--host', '0.0.0.0'], /give a --token/],
  ]
  const { endpoints } = await (await import('./helpers.js')).etcd()
  for (const [args, message] of cases) {
    const r = await cli(['--endpoints', endpoints.join(','), ...args])
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    t.regex(r.stderr, message, args.join(' '))
  }
  const started = Date.now()
  const down = await cli(['services', '--endpoints', '127.0.0.1:1', '--timeout', '300'])
  t.is(down.code, 1)
  t.regex(down.stderr, /etcd at 127\.0\.0\.1:1 is unreachable: connection refused/)
  t.true(Date.now() - started < 5_000)
  t.is((await cli(['--help'])).code, 0)
})

test('the binary: exit codes, and `watch services` streams changes until interrupted', async (t) => {
  const s = await scene(t, 'cli-watch')
  const help = spawnCli(['--help'])
  t.is(await help.exited, 0)
  t.regex(help.lines.join('\n'), /Usage: etcdkit <command>/)
  const bad = spawnCli(['frobnicate'])
  t.is(await bad.exited, 2)

  const watch = spawnCli([
    'watch',
    'services',
    '--endpoints',
    s.endpoints.join(','),
    '--namespace',
    s.namespace,
  ])
  t.teardown(() => watch.child.kill('SIGKILL'))
  await eventually(() => watch.stderr.includes('watching services'), 'the watch started', 15_000)
  const reg = await s.kit().register({ service: 'users', address: '127.0.0.1:4000' })
  await watch.waitForLine((l) => l === '+ users 127.0.0.1:4000 (etcd)')
  await reg.deregister()
  await watch.waitForLine((l) => l === '- users 127.0.0.1:4000 (etcd)')
  await sleep(50)
  t.is(await watch.stop(), 0)
})

test('values from etcd are printed with control characters escaped (tables and plain output), raw only in --json', async (t) => {
  const s = await scene(t, 'cli-escape')
  const hostile = '3.1.0\u001b[31mRED\nbilling  6.6.6.6:1  1  6.6.6  eu  9s  forged\u0007\u202e'
  const lease = (await s.kitEtcdctl(['lease', 'grant', '60'])).match(/lease ([0-9a-f]+) granted/)![1]!
  await s.kitEtcdctl([
    'put',
    `${s.namespace}services/orders/10.0.0.20:80`,
    JSON.stringify({ Op: 0, Addr: '10.0.0.20:80', Metadata: { version: hostile, zone: 'eu\u001b[2J' } }),
    `--lease=${lease}`,
  ])
  await s.kitEtcdctl([
    'put',
    `${s.namespace}leader/x/${BigInt(`0x${lease}`).toString(16)}`, // Go's %x; etcdctl prints %016x
    `node\u001b]0;title\u0007\nfake`,
    `--lease=${lease}`,
  ])
  const kit = s.kit()
  await kit.config.set('motd', 'hello\u001b[31m\r\nworld\u009b')

  const outputs = [
    await s.cli('services'),
    await s.cli('services', 'orders'),
    await s.cli('elections'),
    await s.cli('config', 'get', 'motd'),
    await s.cli('config', 'list'),
    await s.cli('config', 'history', 'motd'),
  ]
  for (const r of outputs) {
    t.is(r.code, 0, r.stderr)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach the terminal
    t.notRegex(r.stdout.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f\u202e]/, r.stdout)
  }
  const [services, , elections, get, list, history] = outputs.map((r) => r.stdout)
  t.true(services!.includes('3.1.0\\e[31mRED\\nbilling  6.6.6.6:1'), services)
  t.true(services!.includes('forged\\x07\\u202e'), services)
  t.false(
    services!.split('\n').some((l) => l.startsWith('billing')),
    'no forged row',
  )
  t.true(elections!.includes('node\\e]0;title\\x07\\nfake'), elections)
  t.is(get, 'hello\\e[31m\\r\\nworld\\x9b\n')
  t.regex(list!, /^motd\s+\(shared\)\s+hello\\e\[31m\\r\\nworld\\x9b$/m)
  t.regex(history!, /hello\\e\[31m\\r\\nworld\\x9b$/m)

  // --json keeps the values as they are (JSON escapes them its own way)
  const json = JSON.parse((await s.cli('services', 'orders', '--json')).stdout) as {
    metadata: { version: string }
  }[]
  t.is(json[0]!.metadata.version, hostile)
  t.is(
    JSON.parse((await s.cli('config', 'get', 'motd', '--json')).stdout).value,
    'hello\u001b[31m\r\nworld\u009b',
  )

  // and the watch streams
  const watch = s.start('watch', 'config')
  await eventually(() => watch.stderr.includes('watching config'), 'the watch started', 10_000)
  await kit.config.set('motd', 'bye\u001b[0m\nput evil = 1')
  await eventually(
    () => watch.stdout.includes('put motd = bye\\e[0m\\nput evil = 1\n'),
    'the put streamed escaped',
  )
  t.is(await watch.interrupt(), 0)
  t.false(watch.stdout.includes('\u001b'))
})

/** Each framework's entry as it writes it, byte for byte (core/test/fixtures/dialects cites the sources). */
const FRAMEWORK_ENTRIES = [
  [
    '/microservices/helloworld/0',
    '{"id":"0","name":"helloworld","version":"v1.0.0","metadata":{"weight":"10"},"endpoints":["grpc://127.0.0.1:9000"]}',
  ],
  [
    'kitex/registry-etcd/registry-etcd-test/127.0.0.1:8888',
    '{"network":"tcp","address":"127.0.0.1:8888","weight":66,"tags":{"hello":"world"}}',
  ],
  [
    'hertz/registry-etcd/hertz.test.demo1/127.0.0.1:8000',
    '{"network":"tcp","address":"127.0.0.1:8000","weight":10,"tags":null}',
  ],
  [
    '/micro/registry/foo/foo-1.0.0-123',
    '{"name":"foo","version":"1.0.0","metadata":null,"endpoints":null,"nodes":[{"metadata":null,"id":"foo-1.0.0-123","address":"localhost:9999"}]}',
  ],
  // go-zero's: not under a common root, so in no listing of every service (only of one service)
  ['user.rpc/7587870939398291206', '10.0.0.7:8080'],
] as const

test("services: every dialect with a DIALECT column, --dialect lists one dialect's services; go-zero for one service only; an unknown dialect is a usage error", async (t) => {
  const s = await scene(t, 'cli-dialects')
  const kit = s.kit()
  await kit.register({
    service: 'orders',
    address: '10.0.0.7:3000',
    metadata: { version: '1.4.0' },
    protocol: 'grpc',
    dialects: ['etcd', 'kratos', 'kitex'],
  })
  for (const [key, value] of FRAMEWORK_ENTRIES) await s.kitEtcdctl(['put', `${s.namespace}${key}`, value])

  const all = await s.cli('services')
  t.is(all.code, 0, all.stderr)
  const lines = all.stdout.split('\n')
  t.regex(lines[0]!, /^SERVICE\s+DIALECT\s+INSTANCES$/)
  const summary = lines.slice(1, lines.indexOf(''))
  t.deepEqual(
    summary.map((l) => l.split(/\s+/).join(' ')),
    [
      'foo go-micro 1',
      'helloworld kratos 1',
      'hertz.test.demo1 hertz 1',
      'orders etcd 1',
      'orders kratos 1',
      'orders kitex 1',
      'registry-etcd-test kitex 1',
    ],
  )
  t.regex(all.stdout, /^SERVICE\s+DIALECT\s+ADDRESS\s+WEIGHT\s+VERSION\s+ZONE\s+TTL\s+PROCESS\s+METADATA$/m)
  t.regex(all.stdout, /^helloworld\s+kratos\s+127\.0\.0\.1:9000\s+10\s+v1\.0\.0\s+no lease\s+unknown/m)
  t.regex(all.stdout, /^registry-etcd-test\s+kitex\s+127\.0\.0\.1:8888\s+66\s+no lease\s+unknown/m)
  t.regex(all.stdout, /^foo\s+go-micro\s+localhost:9999\s+1\s+1\.0\.0\s+no lease/m)
  for (const dialect of ['etcd', 'kratos', 'kitex'])
    t.regex(
      all.stdout,
      new RegExp(`^orders\\s+${dialect}\\s+10\\.0\\.0\\.7:3000\\s+\\d+\\s+1\\.4\\.0\\s+\\d+s\\s+`, 'm'),
    )
  t.false(all.stdout.includes('user.rpc'))

  // one dialect's services
  const kratos = await s.cli('services', '--dialect', 'kratos')
  t.is(kratos.code, 0, kratos.stderr)
  const rows = kratos.stdout.split('\n').filter((l) => /^\S+\s+\S+\s+\S+:\d+\s/.test(l))
  t.deepEqual(
    rows.map((l) => l.split(/\s+/).slice(0, 3).join(' ')),
    ['helloworld kratos 127.0.0.1:9000', 'orders kratos 10.0.0.7:3000'],
  )
  const json = await s.cli('services', '--dialect', 'kitex', '--json')
  t.is(json.code, 0, json.stderr)
  t.deepEqual(
    (JSON.parse(json.stdout) as { service: string; dialect: string; address: string }[]).map((r) => [
      r.service,
      r.dialect,
      r.address,
    ]),
    [
      ['orders', 'kitex', '10.0.0.7:3000'],
      ['registry-etcd-test', 'kitex', '127.0.0.1:8888'],
    ],
  )
  // one service in every dialect it is registered in
  const orders = JSON.parse((await s.cli('services', 'orders', '--json')).stdout) as { dialect: string }[]
  t.deepEqual(
    orders.map((r) => r.dialect),
    ['etcd', 'kratos', 'kitex'],
  )
  // go-zero's Keys have no common root: every service of it cannot be listed, one service can
  const goZero = await s.cli('services', '--dialect', 'go-zero')
  t.is(goZero.code, 2)
  t.regex(goZero.stderr, /go-zero/)
  const user = await s.cli('services', 'user', '--dialect', 'go-zero')
  t.is(user.code, 0, user.stderr)
  t.regex(user.stdout, /^user\s+go-zero\s+10\.0\.0\.7:8080\s+1\s+no lease\s+unknown/m)
  const userEverywhere = JSON.parse((await s.cli('services', 'user', '--json')).stdout) as {
    dialect: string
    key: string
  }[]
  t.deepEqual(
    userEverywhere.map((r) => [r.dialect, r.key]),
    [['go-zero', 'user.rpc/7587870939398291206']],
  )
  t.is((await s.cli('services', 'a b')).code, 2, 'a bad service name is a usage error')
  const bad = await s.cli('services', '--dialect', 'consul')
  t.is(bad.code, 2)
  t.regex(bad.stderr, /"consul"/)

  // watch: every dialect, each line naming it; --dialect narrows it
  const watch = s.start('watch', 'services')
  const watchKitex = s.start('watch', 'services', '--dialect', 'kitex')
  await eventually(
    () => watch.stderr.includes('watching services') && watchKitex.stderr.includes('watching services'),
    'the watches started',
    10_000,
  )
  const reg = await kit.register({
    service: 'users',
    address: '127.0.0.1:4000',
    dialects: ['go-micro', 'kitex'],
  })
  await eventually(
    () =>
      watch.stdout.includes('+ users 127.0.0.1:4000 (go-micro)\n') &&
      watch.stdout.includes('+ users 127.0.0.1:4000 (kitex)\n') &&
      watchKitex.stdout.includes('+ users 127.0.0.1:4000 (kitex)\n'),
    'the new instance streamed in each dialect',
  )
  await reg.deregister()
  await eventually(
    () =>
      watch.stdout.includes('- users 127.0.0.1:4000 (go-micro)\n') &&
      watchKitex.stdout.includes('- users 127.0.0.1:4000 (kitex)\n'),
    'the removal streamed, naming the service and address in each dialect',
  )
  t.false(watchKitex.stdout.includes('go-micro'))
  t.is(await watch.interrupt(), 0)
  t.is(await watchKitex.interrupt(), 0)
})

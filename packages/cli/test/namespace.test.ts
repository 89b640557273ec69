// Every command and the console, with and without --namespace. Without one, the kit's key space is the
// whole of etcd's, so each case runs on an etcd of its own (the shared one holds every other test's keys).
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { eventually, startEtcd } from '@etcdkit/testing'
import test, { type ExecutionContext } from 'ava'
import { cli, startCli } from './helpers.js'

async function everyCommand(t: ExecutionContext, namespace: string) {
  const etcd = await startEtcd()
  t.teardown(() => etcd.close())
  const { endpoints } = etcd
  const kits: EtcdKit[] = []
  t.teardown(() => Promise.all(kits.map((k) => k.close())))
  const newKit = () => {
    const kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
    kits.push(kit)
    return kit
  }
  const a = newKit()
  const b = newKit()
  const base = ['--endpoints', endpoints.join(','), ...(namespace ? ['--namespace', namespace] : [])]
  const run = (...args: string[]) => cli([...base, ...args])
  const ok = async (...args: string[]) => {
    const r = await run(...args)
    t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }

  await a.register({ service: 'orders', address: '10.0.0.7:3000', metadata: { version: '1.4.0' } })
  const held = await a.lock('jobs/report').acquire()
  const waiting = b.lock('jobs/report').acquire()
  const leader = await a.election('leader/scheduler').campaign('node-a')
  const aLease = a.session.lease!.hex

  t.regex(await ok('services'), /^orders\s+etcd\s+10\.0\.0\.7:3000\s+1\s+1\.4\.0\s/m)
  t.regex(await ok('services', 'orders'), /^orders\s+etcd\s+10\.0\.0\.7:3000\s/m)
  await eventually(async () => (await run('locks')).stdout.includes(b.session.lease?.hex ?? '-'), 'b queued')
  const bLease = b.session.lease!.hex
  const locks = await ok('locks')
  t.regex(locks, new RegExp(`^jobs/report\\s+holder\\s+${aLease}\\s`, 'm'))
  t.regex(locks, new RegExp(`^\\s+waiting #1\\s+${bLease}\\s`, 'm'))
  t.notRegex(locks, /leader\/scheduler|sessions\/|services\/|config\//)
  t.regex(await ok('locks', 'jobs/'), /^jobs\/report\s+holder/m)
  t.regex(await ok('elections'), new RegExp(`^leader/scheduler\\s+leader\\s+${aLease}\\s.*node-a$`, 'm'))
  t.regex(await ok('elections', 'leader/'), /^leader\/scheduler\s+leader\s/m)
  t.regex(await ok('config', 'set', 'rate-limit', '7', '--service', 'orders'), /^$/)
  t.is(await ok('config', 'get', 'rate-limit', '--service', 'orders'), '7\n')
  await ok('config', 'delete', 'rate-limit', '--service', 'orders')

  await ok('config', 'set', 'rate-limit', '100')
  await ok('config', 'set', 'rate-limit', '250')
  t.is(await ok('config', 'get', 'rate-limit'), '250\n')
  t.regex(await ok('config', 'list'), /^rate-limit\s+\(shared\)\s+250$/m)
  const history = JSON.parse(await ok('config', 'history', 'rate-limit', '--json')) as { revision: string }[]
  t.is(history.length, 2)
  await ok('config', 'rollback', 'rate-limit', history[1]!.revision)
  t.is(await ok('config', 'get', 'rate-limit'), '100\n')
  await ok('config', 'delete', 'rate-limit')

  const services = startCli([...base, 'watch', 'services'])
  await eventually(() => services.stderr.includes('watching services'), 'watch services started', 10_000)
  await b.register({ service: 'users', address: '127.0.0.1:4000' })
  await eventually(() => services.stdout.includes('+ users 127.0.0.1:4000'), 'the new instance streamed')
  t.is(await services.interrupt(), 0, services.stderr)

  const config = startCli([...base, 'watch', 'config'])
  await eventually(() => config.stderr.includes('watching config'), 'watch config started', 10_000)
  await a.config.set('flag', 'on')
  await eventually(() => config.stdout.includes('put flag = on'), 'the put streamed')
  t.is(await config.interrupt(), 0, config.stderr)

  const lockWatch = startCli([...base, 'watch', 'locks'])
  await eventually(() => lockWatch.stderr.includes('watching locks'), 'watch locks started', 10_000)
  await held.release()
  await eventually(
    () => new RegExp(`^lock jobs/report: ${bLease} `, 'm').test(lockWatch.stdout),
    'the new holder streamed',
  )
  t.is(await lockWatch.interrupt(), 0, lockWatch.stderr)

  const web = startCli([...base, 'console', '--port', '0'])
  await eventually(() => /etcdkit console at \S+/.test(web.stdout), 'the console started', 10_000)
  const url = /etcdkit console at (\S+)/.exec(web.stdout)![1]!
  const snapshot = (await (await fetch(`${url}api/snapshot`)).json()) as {
    services: { service: string }[]
    queues: { name: string; kind: string }[]
  }
  t.deepEqual(snapshot.services.map((s) => s.service).sort(), ['orders', 'users'])
  t.deepEqual(
    snapshot.queues.map((q) => [q.name, q.kind]),
    [
      ['jobs/report', 'lock'],
      ['leader/scheduler', 'election'],
    ],
  )
  t.is(await web.interrupt(), 0, web.stderr)

  await (await waiting).release()
  await leader.resign()
}

test('without --namespace (the whole key space) every command and the console work', (t) =>
  everyCommand(t, ''))
test('with --namespace every command and the console work', (t) => everyCommand(t, 'team-a/'))

// Every command against an etcd it cannot reach (a refused port, a silent server): one message naming the
// endpoints, exit 1 within 2 x --timeout; and an interrupt ends any command at any moment.
import { setTimeout as sleep } from 'node:timers/promises'
import { EtcdKit, EtcdKitError, silentLogger } from '@etcdkit/core'
import { eventually, startProxy } from '@etcdkit/testing'
import test from 'ava'
import { startConsole } from '../src/index.js'
import { cli, etcd, scene, spawnCli, startCli } from './helpers.js'

const COMMANDS = [
  ['services'],
  ['services', 'orders'],
  ['locks'],
  ['elections'],
  ['config', 'list'],
  ['config', 'get', 'k'],
  ['config', 'set', 'k', 'v'],
  ['config', 'delete', 'k'],
  ['config', 'history', 'k'],
  ['config', 'rollback', 'k', '1'],
  ['watch', 'services'],
  ['watch', 'config'],
  ['watch', 'locks'],
  ['console', '--port', '0'],
]

test('every command against a refused port or a silent etcd: one message naming the endpoints, exit 1 within 2 x --timeout', async (t) => {
  const silent = await startProxy((await etcd()).endpoints[0]!, { mode: 'blackhole' })
  t.teardown(() => silent.close())
  // 1 s: at 400 ms a refused connection was once reported as "no answer" with both cores saturated
  const timeout = 1_000
  t.timeout(120_000)
  for (const [endpoint, why] of [
    ['127.0.0.1:1', 'connection refused'],
    [silent.endpoint, `no answer within ${2 * timeout} ms`],
  ] as const)
    for (const args of COMMANDS) {
      const started = Date.now()
      const r = await cli([...args, '--endpoints', endpoint, '--timeout', String(timeout)])
      const took = Date.now() - started
      const label = `${args.join(' ')} against ${endpoint}`
      t.is(r.code, 1, `${label}: ${r.stderr}`)
      t.is(r.stdout, '', label)
      t.regex(
        r.stderr,
        new RegExp(
          `^etcdkit: etcd at ${endpoint.replace(/\./g, '\\.')} is unreachable: ${why} \\(ETCDKIT_ETCD_UNAVAILABLE\\)\\n$`,
        ),
        label,
      )
      // 2 x --timeout, and the kit's close after it (nothing to release: it never connected), with room for load
      t.true(took < 2 * timeout + 1_500, `${label} took ${took} ms`)
    }
})

test('bad usage is said as such (exit 2) even when etcd is unreachable: arguments are checked without etcd', async (t) => {
  for (const args of [
    ['config', 'get'],
    ['config', 'frob'],
    ['services', 'a', 'b'],
    ['watch', 'everything'],
    ['console', '--port', 'x'],
  ]) {
    const r = await cli([...args, '--endpoints', '127.0.0.1:1', '--timeout', '2000'])
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    t.notRegex(r.stderr, /unreachable/)
  }
})

test('`watch locks` says when a refresh fails and goes on; it never crashes on an unhandled error', async (t) => {
  const s = await scene(t, 'cli-watch-fail')
  const proxy = await startProxy(s.endpoints[0]!)
  t.teardown(() => proxy.close())
  const kit = s.kit()
  const watch = startCli([
    'watch',
    'locks',
    '--endpoints',
    proxy.endpoint,
    '--namespace',
    s.namespace,
    '--timeout',
    '2000', // start-up reads within 2 x 2 s: 1 s was once too short with both cores saturated
  ])
  t.timeout(120_000)
  let ended: number | undefined
  void watch.exited.then((code) => (ended = code))
  await eventually(
    () => watch.stderr.includes('watching locks') || ended !== undefined,
    'the watch started',
    20_000,
  )
  t.is(ended, undefined, watch.stderr)
  // a change reaches the watch, then the proxy holds the refresh it schedules 50 ms later: it fails
  for (let attempt = 0; attempt < 10 && !/etcdkit: /.test(watch.stderr); attempt++) {
    const held = await kit.lock(`jobs/${attempt}`).acquire()
    await sleep(15)
    proxy.stall()
    await sleep(4_500) // beyond the read's 2 s deadline
    proxy.pass()
    await held.release()
    await sleep(200)
  }
  t.regex(watch.stderr, /etcdkit: etcd at 127\.0\.0\.1:\d+ is unreachable|etcdkit: .*(deadline|answer)/i)
  // and it goes on: the next change is streamed
  const next = await kit.lock('jobs/after').acquire()
  await eventually(() => /^lock jobs\/after: /m.test(watch.stdout), 'the watch went on')
  await next.release()
  t.is(await watch.interrupt(), 0, watch.stderr)
})

test('SIGINT and SIGTERM end a command that is still waiting for etcd (the binary)', async (t) => {
  const silent = await startProxy((await etcd()).endpoints[0]!, { mode: 'blackhole' })
  t.teardown(() => silent.close())
  for (const [signal, args] of [
    ['SIGINT', ['console', '--port', '0']],
    ['SIGTERM', ['console', '--port', '0']],
    ['SIGINT', ['services']],
    ['SIGTERM', ['watch', 'locks']],
  ] as const) {
    // a long --timeout: without the signal it would wait for a minute
    const child = spawnCli([...args, '--endpoints', silent.endpoint, '--timeout', '60000'])
    t.teardown(() => child.child.kill('SIGKILL'))
    // once it has connected to "etcd" (it is loaded and waiting on it): its handlers are in place
    const before = silent.accepted
    await eventually(() => silent.accepted > before, 'the CLI connected', 30_000)
    const sent = Date.now()
    child.child.kill(signal)
    const code = await Promise.race([child.exited, sleep(5_000, 'still running' as const)])
    t.is(code, 130, `${args.join(' ')} after ${signal}: ${child.stderr}`)
    t.true(Date.now() - sent < 3_000, `${args.join(' ')} ended ${Date.now() - sent} ms after ${signal}`)
    t.regex(child.stderr, /etcdkit: interrupted/)
  }
})

test('startConsole() with an unreachable etcd rejects with an EtcdKitError naming the endpoints, within its start timeout', async (t) => {
  const silent = await startProxy((await etcd()).endpoints[0]!, { mode: 'blackhole' })
  t.teardown(() => silent.close())
  for (const endpoint of ['127.0.0.1:1', silent.endpoint]) {
    const kit = new EtcdKit({ endpoints: endpoint, logger: silentLogger, callTimeout: 300 })
    t.teardown(() => kit.close())
    const started = Date.now()
    const err = await t.throwsAsync(
      startConsole(kit, {
        port: 0,
        host: '127.0.0.1',
        hostGiven: false,
        write: false,
        token: undefined,
        startTimeout: 600,
      }),
    )
    t.true(err instanceof EtcdKitError, String(err))
    t.is((err as EtcdKitError).code, 'ETCDKIT_ETCD_UNAVAILABLE')
    t.regex(
      err!.message,
      new RegExp(`etcd at ${endpoint.replace(/\./g, '\\.')} is unreachable \\(starting the console\\)`),
    )
    t.true(Date.now() - started < 1_500, `${Date.now() - started} ms`)
  }
})

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type EtcdCluster, etcdctl, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type Logger, silentLogger } from '../src/index.js'
import { etcd, eventually } from './helpers.js'

test.after.always(async () => (await etcd()).close())

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  return { ...silentLogger, warn: (_obj: unknown, msg?: string) => void warnings.push(String(msg)), warnings }
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'etcdkit-cache-'))

test.serial(
  'a process started with configCache while etcd is down serves the cached values, then picks up a change made meanwhile',
  async (t) => {
    const dir = tempDir()
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    await using cluster = await startEtcd({ members: 3 })
    const [mine, ...others] = cluster.members as [EtcdCluster['members'][number], ...EtcdCluster['members']]
    const via = others.map((m) => m.endpoint)
    const options = { namespace: 'boot/', service: 'orders', configCache: { dir, wait: 200 } }

    // a first run reads etcd and keeps a copy of every value
    const first = new EtcdKit({ endpoints: cluster.endpoints, logger: silentLogger, ...options })
    await first.config.setMany({ limit: '100', 'orders/mode': 'fast', 'db/host': 'h1', 'db/port': '5432' })
    const limit1 = first.config.value('limit', { parse: Number })
    await limit1.ready
    t.is(limit1.current, 100)
    t.false(limit1.fromCache)
    const file = first.config.cacheFile!
    await eventually(
      () => existsSync(file) && readFileSync(file, 'utf8').includes('5432'),
      'the cache is written',
    )
    await first.close()

    // etcd (the only member this process knows) is down when the next process starts
    await mine.stop()
    const logger = recordingLogger()
    const started = Date.now()
    await using k = new EtcdKit({ endpoints: [mine.endpoint], logger, ...options })
    const limit = k.config.value('limit', { parse: Number, default: 1 })
    const mode = k.config.value('mode', { default: 'safe' })
    const db = k.config.object('db/')
    await Promise.all([limit.ready, mode.ready, db.ready])
    const elapsed = Date.now() - started
    t.true(elapsed < 5_000, `served from the cache after ${elapsed} ms`)
    t.is(limit.current, 100)
    t.is(mode.current, 'fast') // the service's own key, from the cache too
    t.deepEqual(db.current, { host: 'h1', port: '5432' })
    t.true(limit.fromCache && db.fromCache && k.config.fromCache)
    t.true(limit.stale && db.stale, 'cached values are stale')
    t.true(logger.warnings.some((w) => /serving cached config values/.test(w)))

    // a change made meanwhile, through the members that are up
    await etcdctl(via, ['put', 'boot/config/limit', '250'])
    await etcdctl(via, ['put', 'boot/config/db/host', 'h2'])
    const changes: number[] = []
    limit.on('change', (v) => changes.push(v))
    await mine.restart()
    await eventually(
      () => limit.current === 250 && db.current?.host === 'h2',
      'the live values once etcd answers',
    )
    t.false(limit.fromCache)
    t.false(k.config.fromCache)
    await eventually(() => !limit.stale && !db.stale, 'current once the watch is confirmed')
    t.deepEqual(changes, [250])
    await etcdctl(via, ['put', 'boot/config/limit', '300'])
    await eventually(() => limit.current === 300, 'the watch goes on')
    await eventually(() => readFileSync(file, 'utf8').includes('"300"'), 'the cache follows')
  },
)

test('a corrupt or foreign cache file is ignored with a warning', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const down = '127.0.0.1:1' // nothing listens there: etcd never answers
  const namespace = uniquePrefix('cache')
  const make = (logger: Logger) =>
    new EtcdKit({ endpoints: [down], namespace, logger, callTimeout: 500, configCache: { dir, wait: 50 } })

  const probe = make(silentLogger)
  const file = probe.config.cacheFile!
  await probe.close()
  for (const [content, why] of [
    ['{"format":"etcdkit-config-cache","version":1,"namesp', /config cache ignored/],
    [
      JSON.stringify({
        format: 'etcdkit-config-cache',
        version: 1,
        namespace: 'someone-else/',
        prefix: 'config/',
        service: null,
        revision: '5',
        savedAt: '',
        entries: { limit: { text: '7', revision: '5', createRevision: '5', version: 1 } },
      }),
      /config cache ignored/,
    ],
    ['{"format":"something-else"}', /config cache ignored/],
  ] as const) {
    writeFileSync(file, content)
    const logger = recordingLogger()
    const k = make(logger)
    const limit = k.config.value('limit', { default: 'd' })
    await eventually(() => logger.warnings.some((w) => why.test(w)), 'the warning')
    t.false(limit.loaded, 'nothing served')
    t.false(k.config.fromCache)
    t.is(limit.current, 'd')
    await k.close()
  }
  t.throws(() => new EtcdKit({ endpoints: [down], configCache: { dir: '' } }), {
    message: /invalid configCache/,
  })
})

test('an empty etcd after a non-empty cache keeps the cached values only with keepOnEmpty', async (t) => {
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('cache')
  const kit = (keepOnEmpty: boolean, logger: Logger = silentLogger) => {
    const k = new EtcdKit({ endpoints, namespace, logger, configCache: { dir, wait: 5_000, keepOnEmpty } })
    t.teardown(() => k.close())
    return k
  }
  const first = kit(false)
  await first.config.setMany({ a: '1', b: '2' })
  const a1 = first.config.value('a')
  await a1.ready
  const file = first.config.cacheFile!
  await eventually(() => existsSync(file) && readFileSync(file, 'utf8').includes('"b"'), 'cached')
  await first.close()
  await etcdctl(endpoints, ['del', '--prefix', `${namespace}config/`]) // someone deletes the whole tree

  const logger = recordingLogger()
  const kept = kit(true, logger)
  const a = kept.config.value('a', { default: 'none' })
  await a.ready
  t.is(a.current, '1')
  t.true(logger.warnings.some((w) => /no config at all/.test(w)))
  await kept.config.set('b', '3') // changes still apply
  const b = kept.config.value('b')
  await eventually(() => b.current === '3', 'a later put')
  await kept.close()

  await etcdctl(endpoints, ['del', '--prefix', `${namespace}config/`])
  const plain = kit(false)
  const a2 = plain.config.value('a', { default: 'none' })
  await a2.ready
  t.is(a2.current, 'none', 'without the protection the empty tree is the truth')
  await plain.close()
})

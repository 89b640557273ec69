import { EtcdKit, silentLogger } from '@etcdkit/core'
import type { INestApplication } from '@nestjs/common'
import anyTest from 'ava'
import { createApp, etcd, etcdOptions, eventually, MemoryLogger } from './helpers.js'

const test = anyTest.serial // Nest apps are heavy: one test at a time
test.after.always(async () => (await etcd()).close())

const open: INestApplication[] = []
test.afterEach.always(async () => {
  await Promise.all(open.splice(0).map((app) => app.close().catch(() => {})))
})

async function keys(prefix: string): Promise<string[]> {
  const out = await (await etcd()).etcdctl(['get', '--prefix', '--keys-only', prefix])
  return out.split('\n').filter(Boolean)
}

for (const adapter of ['express', 'fastify'] as const) {
  test(`${adapter}: services/{service}/{address} exists when listen() resolves and is gone when close() resolves`, async (t) => {
    const options = await etcdOptions(`nest-${adapter}`)
    const app = await createApp({
      adapter,
      etcd: { ...options, register: { service: 'orders', metadata: { version: '1.2.3' }, drainDelay: 50 } },
    })
    open.push(app)
    const server = (await app.listen(0, '127.0.0.1')) as { address(): { port: number } }
    const address = `127.0.0.1:${server.address().port}`
    const key = `${options.namespace}services/orders/${address}`
    t.deepEqual(await keys(`${options.namespace}services/`), [key], 'written before listen() resolved')
    const value = await (await etcd()).etcdctl(['get', '--print-value-only', key])
    t.deepEqual(JSON.parse(value), { Op: 0, Addr: address, Metadata: { version: '1.2.3' } })
    const kit = app.get(EtcdKit)
    await app.close()
    t.deepEqual(await keys(`${options.namespace}services/`), [], 'deleted before close() resolved')
    t.true(kit.closed, 'the kit is closed with the app')
  })

  test(`${adapter}: on close, the key is deleted while the server still answers, then drainDelay passes`, async (t) => {
    const options = await etcdOptions(`nest-order-${adapter}`)
    const app = await createApp({
      adapter,
      etcd: { ...options, register: { service: 'orders', drainDelay: 2_000 } },
    })
    open.push(app)
    const server = (await app.listen(0, '127.0.0.1')) as { address(): { port: number } }
    const url = `http://127.0.0.1:${server.address().port}/nothing`
    await using watcher = new EtcdKit({ ...options, logger: silentLogger })
    const orders = watcher.discover('orders')
    await orders.ready
    t.is(orders.instances.length, 1)
    const closing = app.close()
    await eventually(() => orders.instances.length === 0, 'deregistered (seen by a watcher)')
    const res = await fetch(url) // still served (a 404 from the app, not a refused connection or a 503)
    t.is(res.status, 404)
    await closing
    await t.throwsAsync(fetch(url), undefined, 'closed after the drain')
  })
}

test('listen() rejects with ETCDKIT_ETCD_UNAVAILABLE when etcd cannot be reached, and the server is closed', async (t) => {
  const app = await createApp({
    adapter: 'express',
    etcd: {
      endpoints: ['127.0.0.1:1'],
      callTimeout: 200,
      register: { service: 'orders', registerTimeout: 500 },
    },
  })
  open.push(app)
  const err = await t.throwsAsync(app.listen(0, '127.0.0.1'))
  t.is((err as { code?: string }).code, 'ETCDKIT_ETCD_UNAVAILABLE')
  t.false((app.getHttpServer() as { listening: boolean }).listening)
})

test("the kit logs through Nest's logger by default", async (t) => {
  const logger = new MemoryLogger()
  const options = await etcdOptions('nest-logger')
  const app = await createApp({
    adapter: 'fastify',
    etcd: { ...options, register: { service: 'orders', drainDelay: 0 } },
    logger,
  })
  open.push(app)
  await app.listen(0, '127.0.0.1')
  await app.close()
  t.truthy(
    logger.lines.find((l) => l.level === 'log' && /^registered in etcd \{"service":"orders"/.test(l.message)),
    'the registration was logged through Nest',
  )
  t.truthy(logger.lines.find((l) => l.level === 'log' && /^deregistered from etcd/.test(l.message)))
})

test('EtcdKit is injectable by class in other modules; forRootAsync takes a factory with injection', async (t) => {
  const { Inject, Injectable, Module } = await import('@nestjs/common')
  const { NestFactory } = await import('@nestjs/core')
  const { EtcdKitModule } = await import('../src/index.js')
  const options = await etcdOptions('nest-async')
  const SETTINGS = Symbol('settings')
  @Module({ providers: [{ provide: SETTINGS, useValue: options }], exports: [SETTINGS] })
  class SettingsModule {}
  @Injectable()
  class UsesKit {
    constructor(@Inject(EtcdKit) readonly kit: EtcdKit) {}
  }
  @Module({ providers: [UsesKit] })
  class FeatureModule {}
  @Module({
    imports: [
      EtcdKitModule.forRootAsync({
        imports: [SettingsModule],
        inject: [SETTINGS],
        useFactory: (settings: typeof options) => ({ ...settings, logger: silentLogger }),
      }),
      FeatureModule,
    ],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false })
  const kit = app.get(UsesKit).kit
  t.true(kit instanceof EtcdKit)
  t.is(kit, app.get(EtcdKit))
  t.is(kit.namespace, options.namespace)
  await app.close()
  t.true(kit.closed)
})

for (const adapter of ['express', 'fastify'] as const) {
  test(`${adapter}: SIGTERM with enableShutdownHooks() deregisters before the process exits`, async (t) => {
    const { spawnLines } = await import('@etcdkit/testing')
    const { fileURLToPath } = await import('node:url')
    t.timeout(120_000) // starting Nest under tsx in a child process is slow on a loaded machine
    const options = await etcdOptions(`nest-sigterm-${adapter}`)
    const child = spawnLines(
      process.execPath,
      [
        '--import=tsx',
        '--conditions=etcdkit-source',
        fileURLToPath(new URL('fixtures/signal-app.ts', import.meta.url)),
      ],
      {
        ETCD_ENDPOINTS: options.endpoints.join(','),
        ETCDKIT_NAMESPACE: options.namespace,
        NEST_ADAPTER: adapter,
      },
    )
    t.teardown(() => child.child.kill('SIGKILL'))
    const line = await child.waitForLine((l) => l.startsWith('listening '), 45_000)
    const key = `${options.namespace}services/orders/127.0.0.1:${line.split(' ')[1]}`
    t.deepEqual(await keys(`${options.namespace}services/`), [key])
    const started = Date.now()
    child.child.kill('SIGTERM')
    const code = await child.exited
    const took = Date.now() - started
    t.log(`exited ${took} ms after SIGTERM`)
    // well inside the lease's 10 s: the key was deleted, not left to expire
    t.true(took < 5_000, `exited ${took} ms after SIGTERM`)
    t.not(child.child.signalCode, 'SIGKILL')
    t.deepEqual(
      await keys(`${options.namespace}services/`),
      [],
      `gone when the process exited (${code}, ${child.stderr})`,
    )
  })
}

import { EtcdKit } from '@etcdkit/core'
import type { INestApplication } from '@nestjs/common'
import anyTest from 'ava'
import { Limits, LimitsController } from './fixtures/limits.js'
import { createApp, etcd, etcdOptions, eventually, MemoryLogger } from './helpers.js'

// Nest apps are heavy, and Fastify instances started concurrently in one process interfered: one at a time
const test = anyTest.serial
test.after.always(async () => (await etcd()).close())

const open: INestApplication[] = []
test.afterEach.always(async () => {
  await Promise.all(open.splice(0).map((app) => app.close().catch(() => {})))
})

test('etcdctl put reaches @Config and @OnConfigChange in two apps (Express and Fastify); service keys override shared ones; invalid values keep the last good one', async (t) => {
  const options = await etcdOptions('nest-config')
  const { etcdctl } = await etcd()
  const apps = await Promise.all(
    (['express', 'fastify'] as const).map(async (adapter) => {
      const app = await createApp({
        adapter,
        etcd: { ...options, service: 'orders' },
        providers: [Limits],
        controllers: [LimitsController],
      })
      open.push(app)
      await app.init()
      return app
    }),
  )
  const limits = apps.map((app) => app.get(Limits))
  const controllers = apps.map((app) => app.get(LimitsController))
  for (const l of limits) t.is(l.limit, 10, 'the default: nothing stored yet')
  const shared = `${options.namespace}config/rate-limit`
  await etcdctl(['put', shared, '42'])
  for (const [i, l] of limits.entries()) {
    await eventually(() => l.limit === 42, `app ${i}'s @Config shows 42`)
    await eventually(() => l.seen.includes(42), `app ${i}'s @OnConfigChange got 42`)
    await eventually(() => controllers[i]!.limit === 42, `app ${i}'s controller shows 42`)
  }
  const own = `${options.namespace}config/orders/rate-limit`
  await etcdctl(['put', own, '50'])
  for (const l of limits) await eventually(() => l.limit === 50, 'the service key overrides the shared one')
  await etcdctl(['put', shared, '43'])
  await etcdctl(['put', '--', own, '-5'])
  for (const l of limits) {
    await eventually(() => l.text === '-5', 'the text property shows the refused value')
    t.is(l.limit, 50, '-5 is refused: the last good value stays')
  }
  await etcdctl(['del', own])
  for (const l of limits) await eventually(() => l.limit === 43, 'back to the shared key')
  for (const l of limits) t.deepEqual(l.seen, [42, 50, 43], 'handlers saw every good value, never -5')
})

for (const adapter of ['express', 'fastify'] as const) {
  test(`${adapter}: the @Config value read in onModuleInit is the value in etcd, not the default`, async (t) => {
    const options = await etcdOptions('nest-init')
    const { etcdctl } = await etcd()
    await etcdctl(['put', `${options.namespace}config/rate-limit`, '42'])
    const app = await createApp({ adapter, etcd: options, providers: [Limits] })
    open.push(app)
    await app.init()
    t.is(app.get(Limits).atInit, 42)
    t.deepEqual(app.get(Limits).seen, [42], '@OnConfigChange saw the first read replace the default')
  })
}

test('config not read within configReady.timeout: the app starts with the defaults and Nest logs a warning', async (t) => {
  const logger = new MemoryLogger()
  const app = await createApp({
    adapter: 'express',
    etcd: { endpoints: ['127.0.0.1:1'], callTimeout: 200, configReady: { timeout: 300 } },
    providers: [Limits],
    logger,
  })
  open.push(app)
  await app.init()
  t.is(app.get(Limits).atInit, 10)
  const warning = logger.lines.find((l) => l.level === 'warn' && /rate-limit/.test(l.message))
  t.truthy(warning, "a warning through Nest's logger")
  t.regex(
    warning!.message,
    /"rate-limit"\) of Limits was not read from etcd within 300 ms: starting with the defaults/,
  )
})

test('config not read within configReady.timeout with required: startup fails with ETCDKIT_ETCD_UNAVAILABLE and the kit is closed', async (t) => {
  const app = await createApp({
    adapter: 'fastify',
    etcd: { endpoints: ['127.0.0.1:1'], callTimeout: 200, configReady: { timeout: 300, required: true } },
    providers: [Limits],
  })
  const err = await t.throwsAsync(app.init(), { message: /was not read from etcd within 300 ms/ })
  t.is((err as { code?: string }).code, 'ETCDKIT_ETCD_UNAVAILABLE')
  t.true(app.get(EtcdKit).closed)
  await app.close()
})

test('bad module options fail at forRoot with ETCDKIT_INVALID_ARGUMENT', async (t) => {
  for (const [etcdOpts, message] of [
    [{ configReady: { timeout: 0 } }, /invalid configReady.timeout 0/],
    [{ register: { service: 'x', port: 3 } }, /unknown register option "port"/],
  ] as const) {
    await t.throwsAsync(async () => createApp({ adapter: 'express', etcd: etcdOpts as never }), {
      message,
      code: 'ETCDKIT_INVALID_ARGUMENT',
    } as never)
  }
})

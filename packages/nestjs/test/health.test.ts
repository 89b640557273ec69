import { EtcdKit, silentLogger } from '@etcdkit/core'
import { startEtcd, uniquePrefix } from '@etcdkit/testing'
import { Controller, Get, type INestApplication, Inject } from '@nestjs/common'
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus'
import anyTest from 'ava'
import { EtcdKitHealthIndicator } from '../src/index.js'
import { Limits } from './fixtures/limits.js'
import { createApp, etcd, etcdOptions, eventually } from './helpers.js'

const test = anyTest.serial // Nest apps are heavy: one test at a time
test.after.always(async () => (await etcd()).close())

@Controller('health')
class HealthController {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(EtcdKitHealthIndicator) private readonly etcdHealth: EtcdKitHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.etcdHealth.isHealthy('etcd')])
  }
}

const open: INestApplication[] = []
test.afterEach.always(async () => {
  await Promise.all(open.splice(0).map((app) => app.close().catch(() => {})))
})

async function healthUrl(app: INestApplication) {
  const server = (await app.listen(0, '127.0.0.1')) as { address(): { port: number } }
  return `http://127.0.0.1:${server.address().port}/health`
}

const details = async (res: Response) => {
  const body = (await res.json()) as { info?: Record<string, unknown>; error?: Record<string, unknown> }
  return (body.info?.etcd ?? body.error?.etcd) as Record<string, unknown>
}

test('the Terminus indicator is kit.health() and the config: up when ready, down while the lease is gone, down when the kit is closed', async (t) => {
  const options = await etcdOptions('nest-health')
  const app = await createApp({
    adapter: 'express',
    etcd: { ...options, ttl: 2, logger: silentLogger, register: { service: 'orders', drainDelay: 0 } },
    imports: [TerminusModule.forRoot({ logger: false })],
    providers: [Limits],
    controllers: [HealthController],
  })
  open.push(app)
  const url = await healthUrl(app)
  const res = await fetch(url)
  t.is(res.status, 200)
  const up = await details(res)
  t.like(up, { status: 'up', reasons: [], session: 'alive', registration: 'written', config: 'loaded' })
  t.like(up.views, { stale: 0 })
  t.true((up.views as { current: number }).current >= 1, "the @Config values' view is current")
  // the lease revoked behind the kit's back: etcd deleted the registration; the session is lost until
  // a new lease is granted and the key written again
  const kit = app.get(EtcdKit)
  const lease = kit.session.lease!
  const { etcdctl } = await etcd()
  await etcdctl(['lease', 'revoke', lease.hex])
  await eventually(
    async () => (await fetch(url)).status === 503 || kit.session.lease?.hex !== lease.hex,
    'down, or already recovered',
  )
  await eventually(
    async () => (await fetch(url)).status === 200,
    'up again once the registration is rewritten',
  )
  await kit.close() // the app still serves, without etcd
  const down = await fetch(url)
  t.is(down.status, 503)
  t.like(await details(down), { status: 'down', session: 'closed', reasons: ['the kit is closed'] })
})

test('down while a view of etcd is not current, though the session is alive and the registration written', async (t) => {
  // a least-privilege user: it may register and read its config, not read the registrations of "users"
  const own = await startEtcd({ auth: true })
  t.teardown(() => own.close())
  const namespace = uniquePrefix('nest-health-views')
  const auth = await own.auth!.user('orders', [
    { prefix: `${namespace}services/orders/`, permission: 'readwrite' },
    { prefix: `${namespace}sessions/`, permission: 'readwrite' },
    { prefix: `${namespace}config/`, permission: 'read' },
  ])
  const app = await createApp({
    adapter: 'fastify',
    etcd: {
      endpoints: own.endpoints,
      namespace,
      auth,
      logger: silentLogger,
      register: { service: 'orders', drainDelay: 0 },
    },
    imports: [TerminusModule.forRoot({ logger: false })],
    controllers: [HealthController],
  })
  open.push(app)
  const url = await healthUrl(app)
  t.is((await fetch(url)).status, 200)
  app.get(EtcdKit).discover('users') // as kit.service('users') does: a view this user may not read
  await eventually(async () => (await fetch(url)).status === 503, 'down')
  const down = await details(await fetch(url))
  t.like(down, { status: 'down', session: 'alive', registration: 'written', views: { stale: 1 } })
  t.true(
    (down.reasons as string[]).some((r) => r.includes('"users"')),
    `a reason names the view: ${JSON.stringify(down.reasons)}`,
  )
})

test('down from the moment shutdown deregisters the app, while it still serves during drainDelay', async (t) => {
  const options = await etcdOptions('nest-health-drain')
  const app = await createApp({
    adapter: 'express',
    etcd: { ...options, logger: silentLogger, register: { service: 'orders', drainDelay: 1_500 } },
    imports: [TerminusModule.forRoot({ logger: false })],
    controllers: [HealthController],
  })
  open.push(app)
  const url = await healthUrl(app)
  t.is((await fetch(url)).status, 200)
  const closing = app.close()
  await eventually(async () => (await fetch(url)).status === 503, 'down while draining')
  t.like(await details(await fetch(url)), { status: 'down', registration: 'draining' })
  await closing
})

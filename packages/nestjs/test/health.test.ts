import { EtcdKit, silentLogger } from '@etcdkit/core'
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

test('the Terminus indicator: up with the session alive, the registration written and the config read; down when the session is closed', async (t) => {
  const options = await etcdOptions('nest-health')
  const app = await createApp({
    adapter: 'express',
    etcd: { ...options, ttl: 2, logger: silentLogger, register: { service: 'orders', drainDelay: 0 } },
    imports: [TerminusModule.forRoot({ logger: false })],
    providers: [Limits],
    controllers: [HealthController],
  })
  open.push(app)
  const server = (await app.listen(0, '127.0.0.1')) as { address(): { port: number } }
  const url = `http://127.0.0.1:${server.address().port}/health`
  const res = await fetch(url)
  t.is(res.status, 200)
  t.deepEqual(await res.json(), {
    status: 'ok',
    info: { etcd: { status: 'up', session: 'alive', registration: 'written', config: 'loaded' } },
    error: {},
    details: { etcd: { status: 'up', session: 'alive', registration: 'written', config: 'loaded' } },
  })
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
  t.like(await down.json(), { status: 'error', error: { etcd: { status: 'down', session: 'closed' } } })
})

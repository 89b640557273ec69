import { EtcdKit, type HeldLock, silentLogger } from '@etcdkit/core'
import { Config, WithLock } from '@etcdkit/decorators'
import {
  type BeforeApplicationShutdown,
  Global,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import anyTest from 'ava'
import { EtcdKitModule } from '../src/index.js'
import { etcd, etcdOptions } from './helpers.js'

const test = anyTest.serial // Nest apps are heavy: one test at a time
test.after.always(async () => (await etcd()).close())

/** A job that holds a lock while the app runs and uses the kit in each of its shutdown hooks. */
@Injectable()
class Jobs implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown, OnApplicationShutdown {
  @Config('batch', { parse: Number, default: 10 })
  batch!: number

  atInit: number | undefined
  held: HeldLock | undefined
  /** What each shutdown hook did with the kit: `ok`, or the error's code. */
  readonly hooks: Record<string, string> = {}

  constructor(@Inject(EtcdKit) private readonly kit: EtcdKit) {}

  async onModuleInit() {
    this.atInit = this.batch
    this.held = await this.kit.lock('jobs/held').acquire({ timeout: 5_000 })
  }

  @WithLock('jobs/final')
  async finalReport(): Promise<number> {
    return this.batch
  }

  async #use(hook: string, work: () => Promise<unknown>) {
    try {
      await work()
      this.hooks[hook] = 'ok'
    } catch (err) {
      this.hooks[hook] = String((err as { code?: unknown }).code ?? err)
    }
  }

  onModuleDestroy() {
    return this.#use('onModuleDestroy', () => this.kit.config.set('destroyed', 'yes'))
  }

  beforeApplicationShutdown() {
    return this.#use('beforeApplicationShutdown', () => this.finalReport())
  }

  onApplicationShutdown() {
    return this.#use('onApplicationShutdown', async () => {
      await this.finalReport()
      await this.held!.release()
      await this.kit.config.set('last-run', 'clean')
    })
  }
}

// global and imported before EtcdKitModule: without the module's own ordering, Nest runs this module's
// hooks before EtcdKitModule's at init and after them at shutdown
@Global()
@Module({ providers: [Jobs], exports: [Jobs] })
class JobsModule {}

test("a global module imported before EtcdKitModule reads etcd's @Config in onModuleInit and still has the kit in every shutdown hook", async (t) => {
  const options = await etcdOptions('nest-hook-order')
  const { etcdctl } = await etcd()
  await etcdctl(['put', `${options.namespace}config/batch`, '42'])
  @Module({
    imports: [
      JobsModule,
      EtcdKitModule.forRoot({
        ...options,
        logger: silentLogger,
        register: { service: 'jobs', drainDelay: 0 },
      }),
    ],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule, new ExpressAdapter(), {
    logger: false,
    abortOnError: false,
  })
  let closed = false
  t.teardown(() => (closed ? undefined : app.close()))
  await app.listen(0, '127.0.0.1')
  const jobs = app.get(Jobs)
  const kit = app.get(EtcdKit)
  await app.close()
  closed = true
  t.deepEqual(jobs.hooks, {
    onModuleDestroy: 'ok',
    beforeApplicationShutdown: 'ok',
    onApplicationShutdown: 'ok',
  })
  t.is(jobs.atInit, 42, "onModuleInit read etcd's value, not the default")
  t.true(kit.closed, 'the kit is closed once the app is')
  const get = async (key: string) => etcdctl(['get', '--print-value-only', `${options.namespace}${key}`])
  t.is((await get('config/destroyed')).trim(), 'yes')
  t.is((await get('config/last-run')).trim(), 'clean')
  const left = await etcdctl(['get', '--prefix', '--keys-only', options.namespace])
  t.deepEqual(
    left
      .split('\n')
      .filter(Boolean)
      .filter((k) => /\/(services|jobs|sessions)\//.test(k)),
    [],
    'no lock, registration or session key left',
  )
})

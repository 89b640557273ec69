// The module's explorer with providers compiled as standard (TC39) decorators. Nest's own class decorators
// (@Injectable, @Module, @Controller) work in this mode; its parameter decorators (@Inject in a
// constructor) do not exist in it, so these providers take no constructor injection.
import { Config, currentLock, OnConfigChange, WithLock } from '@etcdkit/decorators'
import { Injectable, type OnModuleInit } from '@nestjs/common'
import test from 'ava'
import { createApp, etcd, etcdOptions, eventually } from '../helpers.js'

test.after.always(async () => (await etcd()).close())

@Injectable()
class StandardLimits implements OnModuleInit {
  @Config('rate-limit', { parse: Number, default: 10 })
  limit!: number

  readonly seen: number[] = []
  atInit: number | undefined

  @OnConfigChange('rate-limit', { parse: Number })
  onLimit(value: number) {
    this.seen.push(value)
  }

  @WithLock('jobs/standard')
  async locked(): Promise<string | undefined> {
    return currentLock()?.name
  }

  onModuleInit() {
    this.atInit = this.limit
  }
}

test('standard decorators: a provider is bound by the explorer, reads etcd before onModuleInit, follows changes and locks', async (t) => {
  const calls: unknown[][] = []
  const probe = (...args: unknown[]) => {
    calls.push(args)
  }
  class Probe {
    @probe
    method() {}
  }
  t.truthy(Probe)
  t.is(calls[0]?.length, 2, 'this file is compiled as standard decorators: (value, context)')

  const options = await etcdOptions('nest-standard')
  const { etcdctl } = await etcd()
  await etcdctl(['put', `${options.namespace}config/rate-limit`, '42'])
  const app = await createApp({ adapter: 'fastify', etcd: options, providers: [StandardLimits] })
  try {
    await app.init()
    const limits = app.get(StandardLimits)
    t.is(limits.atInit, 42)
    await etcdctl(['put', `${options.namespace}config/rate-limit`, '7'])
    await eventually(() => limits.limit === 7 && limits.seen.includes(7), 'the change reached both')
    t.is(await limits.locked(), 'jobs/standard')
  } finally {
    await app.close()
  }
})

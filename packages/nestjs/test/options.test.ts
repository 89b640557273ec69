// forRoot checks every kit and register option with core's own checks: a bad one throws there, not later
// at NestFactory.create. No etcd needed: nothing may be created by a check.
import 'reflect-metadata'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { Injectable, Module } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import test from 'ava'
import { EtcdKitModule, type EtcdKitModuleRootOptions } from '../src/index.js'

const bad: Array<[string, Record<string, unknown>, RegExp]> = [
  ['ttl 0', { ttl: 0 }, /invalid ttl 0/],
  ['ttl 2.5', { ttl: 2.5 }, /invalid ttl 2.5/],
  ['isGlobal not a boolean', { isGlobal: 'yes' }, /invalid isGlobal "yes": expected a boolean/],
  [
    'global and isGlobal disagree',
    { global: true, isGlobal: false },
    /global true and isGlobal false disagree/,
  ],
  ['register.drainDelay -1', { register: { service: 'orders', drainDelay: -1 } }, /drainDelay -1/],
  [
    'register.closeTimeout below drainDelay',
    { register: { service: 'orders', drainDelay: 2_000, closeTimeout: 100 } },
    /closeTimeout 100: expected at least drainDelay/,
  ],
  ['a bad namespace', { namespace: 7 }, /invalid namespace 7/],
  ['a bad endpoint', { endpoints: ['not an endpoint'] }, /invalid endpoint "not an endpoint"/],
  ['callTimeout 0', { callTimeout: 0 }, /invalid callTimeout 0/],
  ['a bad register.service', { register: { service: 'orders/v1' } }, /service name "orders\/v1"/],
  ['a bad kit service', { service: 'a b' }, /service name "a b"/],
  [
    'a bad register.advertise',
    { register: { service: 'orders', advertise: 'a:b:c' } },
    /invalid advertise "a:b:c"/,
  ],
  ['register.metadata.weight -1', { register: { service: 'orders', metadata: { weight: -1 } } }, /weight -1/],
  ['an unknown kit option', { ttll: 10 }, /unknown EtcdKit option "ttll"/],
  ['a bad configCache', { configCache: { dir: '' } }, /invalid configCache/],
  ['auth without a password', { auth: { username: 'u' } }, /invalid auth/],
]

for (const [what, options, message] of bad) {
  test(`forRoot throws ETCDKIT_INVALID_ARGUMENT for ${what}`, (t) => {
    const err = t.throws(() => EtcdKitModule.forRoot(options as EtcdKitModuleRootOptions), {
      code: 'ETCDKIT_INVALID_ARGUMENT',
      message,
    } as never)
    t.regex(err?.message ?? '', /@etcdkit\/nestjs/, 'the message names the package')
  })
}

test('forRootAsync: the factory result is checked alike, and global belongs to forRootAsync', async (t) => {
  const check = async (result: Record<string, unknown>) => {
    const mod = EtcdKitModule.forRootAsync({ useFactory: () => result as never })
    const provider = (mod.providers ?? []).find(
      (p) => typeof p === 'object' && 'useFactory' in p && (p as { inject?: unknown[] }).inject?.length === 0,
    ) as { useFactory: () => Promise<unknown> }
    return provider.useFactory()
  }
  await t.throwsAsync(check({ ttl: 0 }), {
    code: 'ETCDKIT_INVALID_ARGUMENT',
    message: /invalid ttl 0/,
  } as never)
  await t.throwsAsync(check({ isGlobal: true }), { message: /isGlobal goes in forRootAsync's own options/ })
  t.throws(() => EtcdKitModule.forRootAsync({ useFactory: () => ({}), isGlobal: 1 as never }), {
    message: /invalid isGlobal 1/,
  })
})

test('isGlobal (as @nestjs/config users write it) is global: the kit is injectable without importing the module', async (t) => {
  t.is(EtcdKitModule.forRoot({ isGlobal: false }).global, false)
  t.is(EtcdKitModule.forRoot({ isGlobal: true }).global, true)
  t.is(EtcdKitModule.forRoot({}).global, true)
  t.is(EtcdKitModule.forRootAsync({ useFactory: () => ({}), isGlobal: false }).global, false)

  @Injectable()
  class UsesKit {
    static inject = [EtcdKit]
    constructor(readonly kit: EtcdKit) {}
  }
  @Module({
    providers: [{ provide: UsesKit, useFactory: (kit: EtcdKit) => new UsesKit(kit), inject: [EtcdKit] }],
  })
  class Feature {}
  @Module({
    imports: [
      EtcdKitModule.forRoot({
        isGlobal: true,
        endpoints: ['127.0.0.1:1'],
        logger: silentLogger,
        configReady: { timeout: 100 },
      }),
      Feature,
    ],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false })
  t.true(app.get(UsesKit).kit instanceof EtcdKit)
  await app.close()
})

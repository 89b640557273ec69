// A Nest app: @etcdkit/nestjs provides the kit, @openfeature/nestjs-sdk the flags in controllers.
import 'reflect-metadata'
import { EtcdKit } from '@etcdkit/core'
import { EtcdKitModule } from '@etcdkit/nestjs'
import { uniquePrefix } from '@etcdkit/testing'
import { Controller, Get, Inject, Injectable, Module, type OnModuleInit } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { BooleanFeatureFlag, OpenFeatureClient, OpenFeatureModule } from '@openfeature/nestjs-sdk'
import { type Client, type EvaluationDetails, OpenFeature } from '@openfeature/server-sdk'
import test from 'ava'
import { firstValueFrom, type Observable } from 'rxjs'
import { EtcdKitFlagProvider, FlagAdmin } from '../src/index.js'
import { etcd, eventually } from './helpers.js'

test.after.always(async () => (await etcd()).close())

/**
 * Sets the etcd flag provider, on the kit EtcdKitModule made, as OpenFeature's default provider before the
 * app serves (the module's client for a named domain exists only for domains given to forRoot up front).
 */
@Injectable()
class FlagsSetup implements OnModuleInit {
  provider: EtcdKitFlagProvider | undefined
  constructor(@Inject(EtcdKit) private readonly kit: EtcdKit) {}
  async onModuleInit() {
    this.provider = new EtcdKitFlagProvider({ kit: this.kit })
    await OpenFeature.setProviderAndWait(this.provider)
  }
}

@Controller()
class CheckoutController {
  constructor(@OpenFeatureClient() private readonly flags: Client) {}

  @Get('/checkout')
  checkout(
    @BooleanFeatureFlag({ flagKey: 'new-checkout', defaultValue: false })
    flag: Observable<EvaluationDetails<boolean>>,
  ) {
    return firstValueFrom(flag)
  }

  @Get('/zone')
  async zone() {
    return { zoned: await this.flags.getBooleanValue('zoned', false) }
  }
}

test('a Nest app (EtcdKitModule + OpenFeatureModule) serves flags from etcd, live, with the instance service in the context', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('nest-flags')
  @Module({
    imports: [
      EtcdKitModule.forRoot({ endpoints, namespace, service: 'orders', register: { service: 'orders' } }),
      OpenFeatureModule.forRoot({}),
    ],
    providers: [FlagsSetup],
    controllers: [CheckoutController],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule, new ExpressAdapter(), {
    logger: false,
    abortOnError: false,
  })
  t.teardown(() => app.close())
  await using writer = new EtcdKit({ endpoints, namespace })
  const admin = new FlagAdmin(writer)
  await admin.setBoolean('new-checkout', false)
  await admin.set('zoned', {
    state: 'ENABLED',
    variants: { on: true, off: false },
    defaultVariant: 'off',
    targeting: { if: [{ '==': [{ var: 'service' }, 'orders'] }, 'on', 'off'] },
  })
  await app.listen(0, '127.0.0.1')
  const base = await app.getUrl()
  const get = async (path: string) =>
    (await fetch(`${base.replace('[::1]', '127.0.0.1')}${path}`)).json() as Promise<Record<string, unknown>>
  t.like(await get('/checkout'), { flagKey: 'new-checkout', value: false, variant: 'off', reason: 'STATIC' })
  t.deepEqual(await get('/zone'), { zoned: true })
  await admin.setBoolean('new-checkout', true, { writer: 'release' })
  await eventually(async () => (await get('/checkout')).value === true, 'the change reaches the controller')
  t.is(app.get(FlagsSetup).provider?.state, 'ready')
})

// A NestJS app whose flags live in etcd: EtcdKitModule makes the kit (and registers the app when it
// listens), a provider sets the etcd flag provider as OpenFeature's default on that kit, and controllers
// read flags with @openfeature/nestjs-sdk's decorators.
import 'reflect-metadata'
import { EtcdKit } from '@etcdkit/core'
import { EtcdKitModule } from '@etcdkit/nestjs'
import { EtcdKitFlagProvider } from '@etcdkit/openfeature'
import {
  Controller,
  Get,
  type INestApplication,
  Inject,
  Injectable,
  Module,
  type OnModuleInit,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { BooleanFeatureFlag, OpenFeatureModule } from '@openfeature/nestjs-sdk'
import { type EvaluationDetails, OpenFeature } from '@openfeature/server-sdk'
import { firstValueFrom, type Observable } from 'rxjs'

/** Sets the etcd flag provider on the module's kit before the app serves (the kit is injectable here). */
@Injectable()
export class Flags implements OnModuleInit {
  constructor(@Inject(EtcdKit) private readonly kit: EtcdKit) {}
  async onModuleInit() {
    await OpenFeature.setProviderAndWait(new EtcdKitFlagProvider({ kit: this.kit }))
  }
}

@Controller()
export class CheckoutController {
  @Get('/checkout')
  async checkout(
    @BooleanFeatureFlag({ flagKey: 'new-checkout', defaultValue: false })
    flag: Observable<EvaluationDetails<boolean>>,
  ) {
    const { value, reason } = await firstValueFrom(flag)
    return { checkout: value ? 'new' : 'old', reason }
  }
}

/** One instance of the `checkout` service on `endpoints`, listening on a free port. */
export async function startFlagsExample(options: {
  endpoints: string[]
  namespace: string
}): Promise<INestApplication> {
  @Module({
    imports: [
      EtcdKitModule.forRoot({ ...options, service: 'checkout', register: { service: 'checkout' } }),
      OpenFeatureModule.forRoot({}),
    ],
    providers: [Flags],
    controllers: [CheckoutController],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false })
  await app.listen(0, '127.0.0.1')
  return app
}

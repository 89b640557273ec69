// The Nest example as a function, so the demo can start instances of it in its own process.
import 'reflect-metadata'
import type { Logger as KitLogger } from '@etcdkit/core'
import { EtcdKitModule } from '@etcdkit/nestjs'
import { type INestApplication, type LoggerService, Module } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { GreetingController } from './greeting.controller.js'
import { ReportsService } from './reports.service.js'

export { ReportsService } from './reports.service.js'

export interface NestExampleOptions {
  endpoints: string[]
  namespace?: string
  /** The port to listen on (127.0.0.1). @default 0: any free port */
  port?: number
  /** Nest's logger. @default Nest's console logger */
  logger?: LoggerService | false
  /** The kit's logger. @default Nest's logger */
  kitLogger?: KitLogger
}

/** Starts one instance of the `greeter` service; resolves once it is registered in etcd. */
export async function startNestExample(options: NestExampleOptions): Promise<INestApplication> {
  @Module({
    imports: [
      EtcdKitModule.forRoot({
        endpoints: options.endpoints,
        ...(options.namespace ? { namespace: options.namespace } : {}),
        ...(options.kitLogger ? { logger: options.kitLogger } : {}),
        register: { service: 'greeter', metadata: { version: '1.0.0' }, drainDelay: 200 },
      }),
    ],
    providers: [ReportsService],
    controllers: [GreetingController],
  })
  class AppModule {}

  const app = await NestFactory.create(AppModule, new FastifyAdapter(), {
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
  })
  app.enableShutdownHooks()
  await app.listen(options.port ?? 0, '127.0.0.1')
  return app
}

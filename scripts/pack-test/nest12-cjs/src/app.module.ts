import { EtcdKitModule } from '@etcdkit/nestjs'
import { Module } from '@nestjs/common'
import { TerminusModule } from '@nestjs/terminus'
import { AppController } from './app.controller.js'
import { ReportsModule } from './reports.module.js'

@Module({
  imports: [
    ReportsModule,
    EtcdKitModule.forRootAsync({
      useFactory: () => ({
        endpoints: (process.env.ETCD_ENDPOINTS ?? '127.0.0.1:2379').split(','),
        namespace: process.env.ETCDKIT_NAMESPACE ?? '',
        register: { service: 'nest12', drainDelay: 0 },
      }),
    }),
    TerminusModule.forRoot({ logger: false }),
  ],
  controllers: [AppController],
})
export class AppModule {}

import { EtcdKitModule } from '@etcdkit/nestjs'
import { Module } from '@nestjs/common'
import { AppController } from './app.controller'
import { ReportsService } from './reports.service'

@Module({
  imports: [
    EtcdKitModule.forRootAsync({
      useFactory: () => ({
        endpoints: (process.env.ETCD_ENDPOINTS ?? '127.0.0.1:2379').split(','),
        namespace: process.env.ETCDKIT_NAMESPACE ?? '',
        register: { service: 'nest11', drainDelay: 0 },
      }),
    }),
  ],
  controllers: [AppController],
  providers: [ReportsService],
})
export class AppModule {}

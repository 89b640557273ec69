import { Global, Module } from '@nestjs/common'
import { ReportsService } from './reports.service.js'

// global, and imported before EtcdKitModule: Nest would run its hooks before EtcdKitModule's at init and
// after them at shutdown, were it not for the order EtcdKitModule asks for
@Global()
@Module({ providers: [ReportsService], exports: [ReportsService] })
export class ReportsModule {}

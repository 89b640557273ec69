import { EtcdKitHealthIndicator } from '@etcdkit/nestjs'
import { Controller, Get } from '@nestjs/common'
import { HealthCheck, HealthCheckService } from '@nestjs/terminus'
import { ReportsService } from './reports.service.js'

@Controller()
export class AppController {
  constructor(
    private readonly reports: ReportsService,
    private readonly health: HealthCheckService,
    private readonly etcd: EtcdKitHealthIndicator,
  ) {}

  @Get()
  getBatch(): string {
    return String(this.reports.batch)
  }

  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.etcd.isHealthy('etcd')])
  }
}

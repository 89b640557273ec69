import { Config, WithLock } from '@etcdkit/decorators'
import { Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common'

@Injectable()
export class ReportsService implements OnModuleInit, OnApplicationShutdown {
  @Config('reports/batch', { parse: Number, default: 50 })
  batch: number

  /** What `batch` was in this provider's onModuleInit: etcd's value, not the default. */
  batchAtInit: number | undefined
  /** What the last report run in onApplicationShutdown returned (the kit must still be open). */
  static lastAtShutdown: string | undefined

  onModuleInit() {
    this.batchAtInit = this.batch
  }

  @WithLock('jobs/report')
  async build(): Promise<string> {
    return `report of ${this.batch}`
  }

  async onApplicationShutdown() {
    ReportsService.lastAtShutdown = await this.build()
  }
}

import { Config, WithLock } from '@etcdkit/decorators'
import { Injectable, type OnModuleInit } from '@nestjs/common'

@Injectable()
export class ReportsService implements OnModuleInit {
  @Config('reports/batch', { parse: Number, default: 50 })
  batch!: number

  /** What `batch` was in this provider's onModuleInit: etcd's value, not the default. */
  batchAtInit: number | undefined

  onModuleInit() {
    this.batchAtInit = this.batch
  }

  @WithLock('jobs/report')
  async build(): Promise<string> {
    return `report of ${this.batch}`
  }
}

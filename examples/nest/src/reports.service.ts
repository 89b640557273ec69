import { Config, currentLock, OnConfigChange, WithLock } from '@etcdkit/decorators'
import { Injectable, Logger } from '@nestjs/common'

/**
 * A job that must run on one instance of the service at a time, with a batch size that follows etcd. No
 * bindEtcdKit: EtcdKitModule's explorer binds every provider and controller that uses the decorators.
 */
@Injectable()
export class ReportsService {
  readonly #log = new Logger(ReportsService.name)
  runs = 0

  @Config('reports/batch', {
    parse: Number,
    validate: (n: number) => Number.isInteger(n) && n > 0,
    default: 50,
  })
  batch!: number

  /** Skips when another instance (or this one) is building the report right now. */
  @WithLock('/jobs/report', { wait: false })
  async build(instance: string): Promise<number> {
    const { fencingToken } = currentLock()!
    this.#log.log(`${instance} builds the report (batch ${this.batch}, fencing token ${fencingToken})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    return ++this.runs
  }

  @OnConfigChange('reports/batch')
  batchChanged(batch: number) {
    this.#log.log(`batch is now ${batch}`)
  }
}

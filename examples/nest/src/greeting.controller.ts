import { Config } from '@etcdkit/decorators'
import { Controller, Get, Inject } from '@nestjs/common'
import { ReportsService } from './reports.service.js'

@Controller()
export class GreetingController {
  // explicit tokens: tsx/esbuild emit no design:paramtypes (tsc with emitDecoratorMetadata does)
  constructor(@Inject(ReportsService) private readonly reports: ReportsService) {}

  @Config('greeting', { default: 'hello' })
  greeting!: string

  @Get('hi')
  hi() {
    return { greeting: this.greeting, batch: this.reports.batch }
  }
}

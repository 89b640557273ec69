import { Controller, Get } from '@nestjs/common'
import { ReportsService } from './reports.service'

@Controller()
export class AppController {
  constructor(private readonly reports: ReportsService) {}

  @Get()
  getBatch(): string {
    return String(this.reports.batch)
  }
}

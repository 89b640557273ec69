import { EtcdKit } from '@etcdkit/core'
import type { INestApplication } from '@nestjs/common'
import { Test, type TestingModule } from '@nestjs/testing'
import request from 'supertest'
import type { App } from 'supertest/types'
import { AppModule } from './../src/app.module'
import { ReportsService } from './../src/reports.service'

// the etcd of the pack test, and a namespace of this run (read by AppModule's forRootAsync factory)
const endpoints = process.env.ETCD_ENDPOINTS!.split(',')
const namespace = `pack-test-nest11-${process.pid}-${Date.now()}/`
process.env.ETCDKIT_NAMESPACE = namespace

describe('EtcdKitModule (e2e)', () => {
  let app: INestApplication<App>
  let closed = false
  let admin: EtcdKit
  const registered = () => admin.client.getAll().prefix(`${namespace}services/nest11/`).keys()

  beforeAll(async () => {
    admin = new EtcdKit({ endpoints, namespace })
    await admin.config.set('reports/batch', '42')
  })

  beforeEach(async () => {
    const moduleFixture: TestingModule = await Test.createTestingModule({
      imports: [AppModule],
    }).compile()

    app = moduleFixture.createNestApplication()
    await app.listen(0, '127.0.0.1')
  })

  it('registers on listen, reads @Config from etcd before onModuleInit, runs @WithLock, deregisters on close', async () => {
    const reports = app.get(ReportsService)
    expect(await registered()).toHaveLength(1)
    expect(reports.batchAtInit).toBe(42)
    expect(await reports.build()).toBe('report of 42')
    await request(app.getHttpServer()).get('/').expect(200).expect('42')
    await app.close()
    closed = true
    expect(await registered()).toEqual([])
  }, 30_000)

  afterEach(async () => {
    if (!closed) await app.close()
  })

  afterAll(async () => {
    await admin.close()
  })
})

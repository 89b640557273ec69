import assert from 'node:assert/strict'
import { EtcdKit } from '@etcdkit/core'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { FastifyAdapter } from '@nestjs/platform-fastify'
// vitest, as `nest new` 12 sets up (its generated config has `globals: true`; imported here for tsc)
import { afterAll as after, beforeAll as before, describe, it } from 'vitest'
import { AppModule } from '../src/app.module.js'
import { ReportsService } from '../src/reports.service.js'

// the etcd of the pack test, and a namespace of this run (read by AppModule's forRootAsync factory)
const endpoints = process.env.ETCD_ENDPOINTS!.split(',')
const namespace = `pack-test-nest12-${process.pid}-${Date.now()}/`
process.env.ETCDKIT_NAMESPACE = namespace

describe('EtcdKitModule on NestJS 12 (ESM)', () => {
  let admin: EtcdKit
  const registered = () => admin.client.getAll().prefix(`${namespace}services/nest12/`).keys()

  before(async () => {
    admin = new EtcdKit({ endpoints, namespace })
    await admin.config.set('reports/batch', '42')
  })
  after(() => admin.close())

  for (const adapter of ['express', 'fastify'] as const) {
    it(`${adapter}: registers on listen, @Config from etcd in onModuleInit, @WithLock, Terminus, deregisters on close`, async () => {
      const app = await NestFactory.create(
        AppModule,
        adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(),
        { logger: false },
      )
      let closed = false
      try {
        await app.listen(0, '127.0.0.1')
        const reports = app.get(ReportsService)
        assert.equal((await registered()).length, 1)
        assert.equal(reports.batchAtInit, 42)
        assert.equal(await reports.build(), 'report of 42')
        const url = await app.getUrl()
        assert.equal(await (await fetch(url)).text(), '42')
        const health = await fetch(`${url}/health`)
        assert.equal(health.status, 200)
        assert.equal(((await health.json()) as { info: { etcd: { status: string } } }).info.etcd.status, 'up')
        ReportsService.lastAtShutdown = undefined
        await app.close()
        closed = true
        assert.deepEqual(await registered(), [])
        // a provider's onApplicationShutdown still had the kit (it closes after every other hook)
        assert.equal(ReportsService.lastAtShutdown, 'report of 42')
      } finally {
        if (!closed) await app.close()
      }
    })
  }
})

// app.close() with a request that never ends: bounded by register.closeTimeout, on either adapter.
import { silentLogger } from '@etcdkit/core'
import { uniquePrefix } from '@etcdkit/testing'
import { Controller, Get, Res } from '@nestjs/common'
import test from 'ava'
import { adapters, createApp, etcd } from './helpers.js'

test.after.always(async () => (await etcd()).close())

interface Raw {
  writeHead(status: number): void
  write(chunk: string): void
}

@Controller()
class HangController {
  @Get('hang')
  hang(@Res() res: { raw?: Raw } & Raw) {
    // Express's response, or Fastify's reply with the node response as raw
    const raw = res.raw ?? res
    raw.writeHead(200)
    raw.write('started') // and never ends
  }
}

for (const adapter of adapters) {
  test(`${adapter}: app.close() with a request that never ends finishes once closeTimeout has passed`, async (t) => {
    const { endpoints } = await etcd()
    const app = await createApp({
      adapter,
      etcd: {
        endpoints,
        namespace: uniquePrefix(`nest-hang-${adapter}`),
        logger: silentLogger,
        register: { service: 'hang', drainDelay: 100, closeTimeout: 800 },
      },
      controllers: [HangController],
      logger: false,
    })
    const server = (await app.listen(0, '127.0.0.1')) as { address(): { port: number } }
    const res = await fetch(`http://127.0.0.1:${server.address().port}/hang`)
    const body = res.text().catch((err: unknown) => err)
    const started = Date.now()
    const outcome = await Promise.race([
      app.close().then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('still closing after 6 s'), 6_000)),
    ])
    const took = Date.now() - started
    t.is(outcome, 'closed')
    t.true(took >= 700, `closed after ${took} ms, before closeTimeout`)
    t.true((await body) instanceof Error, 'the hung response was cut')
  })
}

// How soon the Terminus indicator goes down when etcd stops (documented in docs/NESTJS.md): with a live
// view (a @Config value, a discover() view) and for an app with none (only its registration).
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { startEtcd } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKitHealthIndicator } from '../src/index.js'
import { createApp } from './helpers.js'

async function downAfterStop(withView: boolean, ttl: number) {
  const etcd = await startEtcd()
  try {
    const app = await createApp({
      adapter: 'express',
      etcd: {
        endpoints: etcd.endpoints,
        ttl,
        logger: silentLogger,
        register: { service: 'orders', drainDelay: 0 },
      },
      logger: false,
    })
    await app.listen(0, '127.0.0.1')
    const kit = app.get(EtcdKit)
    const indicator = app.get(EtcdKitHealthIndicator)
    if (withView) await kit.discover('users').ready
    const status = async () => (await indicator.isHealthy('etcd')).etcd!
    // a view counts as current shortly after etcd confirms its watch
    const until = Date.now() + 5_000
    while ((await status()).status !== 'up' && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    if ((await status()).status !== 'up') throw new Error(`not up: ${(await status()).reasons}`)
    await etcd.kill()
    const stopped = Date.now()
    let last = await status()
    while (last.status === 'up' && Date.now() - stopped < 4 * ttl * 1_000) {
      await new Promise((r) => setTimeout(r, 50))
      last = await status()
    }
    const took = Date.now() - stopped
    await app.close()
    return { took, reasons: last.reasons, status: last.status }
  } finally {
    await etcd.close()
  }
}

test('with a live view: down within about 2 s of etcd stopping (the view goes stale), whatever the ttl', async (t) => {
  t.timeout(120_000)
  const { took, status, reasons } = await downAfterStop(true, 10)
  t.log(`down ${took} ms after etcd was killed: ${reasons.join('; ')}`)
  t.is(status, 'down')
  t.true(took < 4_000, `${took} ms`)
})

test('no views (only the registration): up until the session is lost, about ttl after etcd stops', async (t) => {
  t.timeout(120_000)
  const ttl = 3
  const { took, status, reasons } = await downAfterStop(false, ttl)
  t.log(`down ${took} ms after etcd was killed (ttl ${ttl} s): ${reasons.join('; ')}`)
  t.is(status, 'down')
  t.true(took <= ttl * 1_000 + 1_500, `${took} ms`)
})

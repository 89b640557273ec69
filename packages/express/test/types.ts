// Type test, checked by `tsc -p tsconfig.json` (not run): typed use compiles, misuse does not.
import type { EtcdKit } from '@etcdkit/core'
import express from 'express'
import { etcdDiscovery } from '../src/index.js'

export async function typed() {
  const discovery = etcdDiscovery({ service: 'users', etcd: { ttl: 10 }, drainDelay: 500, signals: true })
  const app = express()
  app.use(discovery.middleware)
  app.get('/orders', async (req, res) => {
    const kit: EtcdKit = req.etcd
    res.json(kit.discover('orders').instances)
  })
  const server = await discovery.listen(app, 3000)
  server.close()
  return discovery.address
}

export function misuse() {
  // @ts-expect-error drainDelay is a number of milliseconds
  etcdDiscovery({ service: 'users', drainDelay: '1s' })
  // @ts-expect-error signals are signal names
  etcdDiscovery({ service: 'users', signals: ['TERM'] })
  // @ts-expect-error listen takes a request listener
  void etcdDiscovery({ service: 'users' }).listen('app', 3000)
}

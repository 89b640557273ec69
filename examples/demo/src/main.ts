// The demo: a real etcd, two instances of `orders` registering and leaving, and a consumer watching.
// Run with `npm run demo` (or `pnpm demo`); set ETCD_ENDPOINTS to use an etcd of your own.
import { setTimeout as sleep } from 'node:timers/promises'
import { EtcdKit, type Instance } from '@etcdkit/core'
import { type EtcdCluster, etcdctl, startEtcd } from '@etcdkit/testing'

const log = (msg: string) => console.log(`${new Date().toISOString().slice(11, 23)}  ${msg}`)
const show = (list: readonly Instance[]) =>
  list.length === 0 ? '(none)' : list.map((i) => `${i.address} v${i.metadata.version ?? '?'}`).join(', ')

let etcd: EtcdCluster | undefined
let endpoints = process.env.ETCD_ENDPOINTS?.split(',')
if (!endpoints) {
  etcd = await startEtcd()
  endpoints = etcd.endpoints
  log(`started a throwaway etcd at ${endpoints.join(', ')}`)
}
const namespace = `demo-${process.pid}/`

// the consumer: a live view of `orders`
const consumer = new EtcdKit({ endpoints, namespace })
const orders = consumer.discover('orders')
orders.on('change', (list) => log(`consumer sees orders: ${show(list)}`))
await orders.ready

// two providers, each its own kit (its own process, in real life) with its own lease
const a = new EtcdKit({ endpoints, namespace, ttl: 5 })
const b = new EtcdKit({ endpoints, namespace, ttl: 5 })
log('instance A registers 127.0.0.1:3001')
await a.register({ service: 'orders', address: '127.0.0.1:3001', metadata: { version: '1.4.0', weight: 2 } })
log('instance B registers 127.0.0.1:3002')
const regB = await b.register({
  service: 'orders',
  address: '127.0.0.1:3002',
  metadata: { version: '1.4.1' },
})
await sleep(200)

log('what etcdctl sees (Go naming/endpoints format, on each instance lease):')
for (const line of (await etcdctl(endpoints, ['get', '--prefix', `${namespace}services/`]))
  .trim()
  .split('\n'))
  console.log(`      ${line}`)

log('instance B deregisters (graceful shutdown)')
await regB.deregister()
await b.close()
await sleep(200)

log('instance A closes: its key goes, its lease is revoked')
await a.close()
await sleep(200)

await consumer.close()
await etcd?.close()
log('done')

// Two instances of a NestJS service on one etcd: both registered, both greeting with the value etcd holds,
// the report job built by one of them at a time. Run: `pnpm --filter @etcdkit/example-nest start`
// (ETCD_ENDPOINTS is read from the environment; without it a throwaway etcd is started). It stops by itself.
import { setTimeout as sleep } from 'node:timers/promises'
import { sharedEtcd } from '@etcdkit/testing'
import { ReportsService, startNestExample } from './app.js'

const etcd = await sharedEtcd()
const namespace = `nest-example-${process.pid}/`
const apps = [
  await startNestExample({ endpoints: etcd.endpoints, namespace }),
  await startNestExample({ endpoints: etcd.endpoints, namespace }),
]
console.log(await etcd.etcdctl(['get', '--prefix', '--keys-only', `${namespace}services/`]))

const urls = apps.map((app) => {
  const { port } = (app.getHttpServer() as { address(): { port: number } }).address()
  return `http://127.0.0.1:${port}/hi`
})
const greet = async () =>
  Promise.all(urls.map(async (url) => JSON.stringify(await (await fetch(url)).json())))
console.log('greetings:', (await greet()).join(' '))
await etcd.etcdctl(['put', `${namespace}config/greeting`, 'bonjour'])
await etcd.etcdctl(['put', `${namespace}config/reports/batch`, '200'])
await sleep(100)
console.log('after etcdctl put:', (await greet()).join(' '))

// both instances try at once: one builds, the other skips (resolves undefined)
const built = await Promise.all(apps.map((app, i) => app.get(ReportsService).build(`instance ${i + 1}`)))
console.log('report built by:', built.map((runs, i) => (runs ? `instance ${i + 1}` : null)).filter(Boolean))

for (const app of apps) await app.close()
console.log(
  'after close:',
  JSON.stringify(await etcd.etcdctl(['get', '--prefix', '--keys-only', `${namespace}services/`])),
)
await etcd.close()

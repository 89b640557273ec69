// Two `reports` instances in one process (two Fastify apps, two kits: two "processes" as far as etcd is
// concerned). Each runs the report job every second; @WithLock lets only one build it at a time. GET
// /report on either is rate-limited by `config/rate-limit`, changed live below as `etcdctl put` would.
// Run: `pnpm --filter @etcdkit/example-reports start` (ETCD_ENDPOINTS is read from the environment; without
// it a throwaway etcd is started). It stops by itself after a few seconds.
import { setTimeout as sleep } from 'node:timers/promises'
import { etcdDiscovery } from '@etcdkit/fastify'
import { type EtcdCluster, startEtcd } from '@etcdkit/testing'
import Fastify, { type FastifyInstance } from 'fastify'
import { RateLimit, ReportJob } from './reports.js'

let etcd: EtcdCluster | undefined
let endpoints = process.env.ETCD_ENDPOINTS?.split(',')
if (!endpoints) {
  etcd = await startEtcd()
  endpoints = etcd.endpoints
  console.log(`started a throwaway etcd at ${endpoints.join(', ')}`)
}

async function instance(
  name: string,
): Promise<{ app: FastifyInstance; job: ReportJob; limit: RateLimit; timer: NodeJS.Timeout }> {
  const app = Fastify()
  await app.register(etcdDiscovery, { service: 'reports', etcd: { endpoints }, drainDelay: 0 })
  // constructed after the plugin: its kit is the default the decorated instances bind to
  const job = new ReportJob(name)
  const limit = new RateLimit()
  app.get('/report', async (_request, reply) => {
    if (!limit.take()) return reply.code(429).send({ error: 'rate limited', limit: limit.limit })
    return { instance: name, reportsBuilt: job.runs, batch: job.batch }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const timer = setInterval(() => void job.build(), 1_000)
  return { app, job, limit, timer }
}

const a = await instance('a')
const b = await instance('b')

const burst = async (app: FastifyInstance) => {
  const codes = await Promise.all(
    Array.from({ length: 12 }, () => app.inject('/report').then((r) => r.statusCode)),
  )
  return `${codes.filter((c) => c === 200).length} ok, ${codes.filter((c) => c === 429).length} limited`
}

await sleep(2_500)
console.log(`burst of 12 on a with the default limit: ${await burst(a.app)}`)
await a.app.etcd.config.set('rate-limit', '10') // what `etcdctl put config/rate-limit 10` does
await sleep(100)
await sleep(1_000 - (Date.now() % 1_000)) // a fresh one-second window
console.log(`burst of 12 on b after the limit was raised: ${await burst(b.app)}`)
await a.app.etcd.config.set('rate-limit', 'lots') // refused: the last good value stays
await sleep(100)
console.log(`after an invalid value the limit is still ${b.limit.limit}`)
await sleep(2_000)
console.log(`reports built: a ${a.job.runs}, b ${b.job.runs} (never at the same time)`)

for (const { app, timer } of [a, b]) {
  clearInterval(timer)
  await app.close()
}
await etcd?.close()

// The demo: a real etcd, and on it the whole toolkit at work. Two `orders` instances (one on Fastify, one
// on Express) register themselves; a consumer balances requests over them; their greeting follows live
// configuration written with etcdctl; two workers take turns under one cluster-wide lock; an instance
// leaves during traffic without one failed request; the `etcdkit` CLI and web console show it all; Go
// framework readers (go-zero, Kratos, Kitex) find a Node service registered in their formats. Run
// with `npm run demo` (or `pnpm demo`); set ETCD_ENDPOINTS to use an etcd of your own.
import { setTimeout as sleep } from 'node:timers/promises'
import { run as etcdkitCli, startConsole } from '@etcdkit/cli'
import { EtcdKit, type Instance, silentLogger } from '@etcdkit/core'
import { ReportsService, startNestExample } from '@etcdkit/example-nest'
import { etcdDiscovery as expressDiscovery } from '@etcdkit/express'
import { etcdDiscovery as fastifyDiscovery } from '@etcdkit/fastify'
import { runLoad, sharedEtcd } from '@etcdkit/testing'
import express from 'express'
import Fastify from 'fastify'
import { polyglotDemo } from './polyglot.js'

const started = performance.now()
const log = (msg: string) => console.log(`${(performance.now() - started).toFixed(0).padStart(6)} ms  ${msg}`)
const show = (list: readonly Instance[]) =>
  list.length === 0 ? '(none)' : list.map((i) => `${i.address} v${i.metadata.version ?? '?'}`).join(', ')

const etcd = await sharedEtcd()
const { endpoints } = etcd
const namespace = `demo-${process.pid}/`
const kitOptions = { endpoints, namespace, logger: silentLogger, ttl: 5 }
log(process.env.ETCD_ENDPOINTS ? `using etcd at ${endpoints}` : `started a throwaway etcd at ${endpoints}`)

// 1. A consumer watching the `orders` service.
const consumer = new EtcdKit(kitOptions)
const orders = consumer.service('orders')
orders.on('change', (list) => log(`consumer sees orders: ${show(list)}`))
await orders.ready

// 2. Two instances: one Fastify app, one Express app. Each has its own kit (in real life, its own
//    process), registers when it listens, and reads its greeting from live configuration.
const fastify = Fastify()
await fastify.register(fastifyDiscovery, {
  service: 'orders',
  etcd: kitOptions,
  metadata: { version: '1.4.0', weight: 2 },
  drainDelay: 200,
})
const fastifyGreeting = fastify.etcd.config.value('greeting', { default: 'hello' })
fastify.get('/hi', async () => ({ from: 'fastify', greeting: fastifyGreeting.current }))
await fastify.listen({ port: 0, host: '127.0.0.1' })
log('fastify instance listening and registered (weight 2)')

const users = expressDiscovery({
  service: 'orders',
  etcd: kitOptions,
  metadata: { version: '1.4.1' },
  drainDelay: 200,
})
const expressGreeting = users.kit.config.value('greeting', { default: 'hello' })
const app = express()
app.get('/hi', (_req, res) => {
  res.json({ from: 'express', greeting: expressGreeting.current })
})
await users.listen(app, 0, '127.0.0.1')
log('express instance listening and registered (weight 1)')
await sleep(100)

log('etcdctl sees the registrations (Go naming/endpoints format, each on its instance lease):')
for (const line of (await etcd.etcdctl(['get', '--prefix', `${namespace}services/`])).trim().split('\n'))
  console.log(`            ${line}`)

// The same, as the `etcdkit` CLI shows it, and live in the web console while the demo runs
const cliOutput: string[] = []
await etcdkitCli(['services', '--endpoints', endpoints.join(','), '--namespace', namespace], {
  stdout: { write: (text: string) => cliOutput.push(text) },
  stderr: process.stderr,
  env: {},
  password: () => Promise.reject(new Error('no auth in the demo')),
  interrupted: new Promise<void>(() => {}), // never: `services` ends by itself
})
log('`etcdkit services` shows:')
for (const line of cliOutput.join('').trimEnd().split('\n')) console.log(`            ${line}`)
const web = await startConsole(consumer, {
  port: 0,
  host: '127.0.0.1',
  hostGiven: false,
  write: false,
  token: undefined,
})
log(`web console (read-only, live while the demo runs): ${web.url}`)

// 3. Balanced requests: smooth weighted round robin, 2:1.
const call = async () => {
  const res = await orders.request('/hi')
  const body = (await res.body.json()) as { from: string; greeting: string }
  return `${body.from}: ${body.greeting}`
}
const answers: string[] = []
for (let i = 0; i < 6; i++) answers.push(await call())
log(`6 requests through kit.service('orders'): ${answers.join(' | ')}`)

// 4. Live configuration: etcdctl writes, the running instances answer differently at once.
await etcd.etcdctl(['put', `${namespace}config/greeting`, 'bonjour'])
await etcd.etcdctl(['put', `${namespace}config/orders/greeting`, 'hola, orders'])
await sleep(50)
log(`after etcdctl put config/greeting and config/orders/greeting: ${await call()} | ${await call()}`)

// 5. A cluster-wide lock: two workers (two kits, two leases) run a job, never at the same time, in turn.
const workers = [new EtcdKit(kitOptions), new EtcdKit(kitOptions)]
let running = 0
await Promise.all(
  workers.flatMap((kit, w) =>
    [1, 2].map(() =>
      kit.lock('/jobs/report').run(async ({ fencingToken }) => {
        running++
        log(`worker ${w + 1} runs the report job (fencing token ${fencingToken}, ${running} running)`)
        await sleep(30)
        running--
      }),
    ),
  ),
)

// 6. An instance leaves under traffic: it deregisters first, then drains. No request fails.
const load = runLoad(call, 4)
await sleep(200)
log('closing the express instance while 4 workers send requests')
await users.close()
await sleep(200)
const stats = await load.stop()
log(`${stats.ok} requests during the departure, ${stats.failed} failed`)

// 7. A NestJS app (examples/nest): EtcdKitModule registers it on app.listen(), its @Config greeting
//    follows etcd with no glue code, its locked job runs once when called twice at once, and app.close()
//    deregisters it before the server stops.
const nest = await startNestExample({ endpoints, namespace, logger: false, kitLogger: silentLogger })
const greeter = consumer.service('greeter')
await greeter.ready
const greet = async () => JSON.stringify(await (await greeter.request('/hi')).body.json())
log(`nest app registered as greeter (${show(greeter.instances)}): ${await greet()}`)
await etcd.etcdctl(['put', `${namespace}config/reports/batch`, '200'])
await sleep(50)
log(`after etcdctl put config/reports/batch 200: ${await greet()}`)
const reports = nest.get(ReportsService)
const runs = await Promise.all([reports.build('call 1'), reports.build('call 2')])
const outcomes = runs.map((run) => (run === undefined ? 'skipped (the lock was held)' : `ran (run ${run})`))
log(`its @WithLock('/jobs/report', { wait: false }) job, called twice at once: ${outcomes.join(', ')}`)
await nest.close()
log(`nest app closed: greeter instances ${show(greeter.instances)}`)

// 8. Polyglot: one Node service registered in the formats of go-zero, Kratos and Kitex at once, as Go
//    readers that decode each format the way its framework does see it; and a Kratos-registered service
//    found and called from Node.
await polyglotDemo({ kit: consumer, endpoints, namespace, etcdctl: etcd.etcdctl, log })

await fastify.close()
await web.close()
await Promise.all([...workers.map((k) => k.close()), consumer.close()])
await etcd.close()
log('done: every key is gone, every lease revoked')

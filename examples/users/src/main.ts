// The `users` service on Express: registered in etcd while it listens, deregistered before it drains.
// Run: `pnpm --filter @etcdkit/example-users start` (PORT, HOST, ETCD_ENDPOINTS are read from the
// environment; without ETCD_ENDPOINTS a throwaway etcd is started). Stop it with Ctrl-C.
import { etcdDiscovery } from '@etcdkit/express'
import { sharedEtcd } from '@etcdkit/testing'
import express from 'express'

// ETCD_ENDPOINTS, or a throwaway etcd started here (and stopped on exit)
const etcd = await sharedEtcd()
const { endpoints } = etcd
if (etcd.started) console.log(`started a throwaway etcd at ${endpoints.join(', ')}`)

const discovery = etcdDiscovery({
  service: 'users',
  etcd: { endpoints, ttl: 10 },
  metadata: { version: '2.1.0', protocol: 'http' },
  drainDelay: Number(process.env.DRAIN_DELAY ?? 1_000),
  signals: true, // SIGINT / SIGTERM: deregister, wait drainDelay, drain, close the kit (once)
})

const app = express()
app.use(discovery.middleware)

app.get('/users/:id', (req, res) => {
  res.json({ id: req.params.id, name: `user ${req.params.id}`, servedBy: discovery.address })
})

// req.etcd is the kit: here, who else is out there
app.get('/services/:name', (req, res) => {
  const view = req.etcd.discover(req.params.name)
  view.ready.then(
    () => {
      res.json(view.instances.map((i) => ({ address: i.address, ...i.metadata })))
      view.close()
    },
    (err: unknown) => {
      view.close()
      res.status(503).json({ error: String(err) })
    },
  )
})

if (etcd.started) {
  // our own etcd outlives the service's graceful close, then goes too
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void discovery.close().finally(() => etcd.close()))
}

try {
  // resolves once users/<address> is in etcd; a port in use rejects with EADDRINUSE and writes nothing
  await discovery.listen(app, Number(process.env.PORT ?? 3001), process.env.HOST ?? '127.0.0.1')
  console.log(`users listening at ${discovery.address}, registered in etcd as users/${discovery.address}`)
} catch (err) {
  console.error(err)
  await etcd.close()
  process.exitCode = 1
}

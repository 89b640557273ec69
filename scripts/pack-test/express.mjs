// The Express integration: registered once listen() resolves, deregistered by close().
import { EtcdKit } from '@etcdkit/core'
import { etcdDiscovery } from '@etcdkit/express'
import express from 'express'
import common from './common.cjs'

const { assert, endpoints, namespace, registered } = common
const { version } = (await import('express/package.json', { with: { type: 'json' } })).default
const ns = namespace('express')
const reader = new EtcdKit({ endpoints })
const discovery = etcdDiscovery({ service: 'users', etcd: { endpoints, namespace: ns }, drainDelay: 0 })
const app = express()
app.use(discovery.middleware)
app.get('/kit', (req, res) => res.json({ closed: req.etcd.closed }))
const server = await discovery.listen(app, 0, '127.0.0.1')
const { port } = server.address()
assert.deepEqual(await registered(reader, ns, 'users'), [`${ns}services/users/127.0.0.1:${port}`])
const res = await fetch(`http://127.0.0.1:${port}/kit`)
assert.deepEqual(await res.json(), { closed: false })
await discovery.close()
assert.deepEqual(await registered(reader, ns, 'users'), [])
await reader.close()
console.log(`express ${version}: ok`)

// An ESM consumer: every package loads through import, and the core works against etcd.
import { createRequire } from 'node:module'
import { EtcdKit } from '@etcdkit/core'
import { setDefaultKit } from '@etcdkit/core/integration'
import { WithLock } from '@etcdkit/decorators'
import { etcdDiscovery as expressDiscovery } from '@etcdkit/express'
import fastifyDiscovery, { etcdDiscovery } from '@etcdkit/fastify'
import { registerEtcdResolver } from '@etcdkit/grpc'
import common from './common.cjs'

const { assert, endpoints, namespace, registered } = common
assert.equal(fastifyDiscovery, etcdDiscovery)
for (const f of [WithLock, expressDiscovery, registerEtcdResolver]) assert.equal(typeof f, 'function')
const ns = namespace('esm')
const kit = new EtcdKit({ endpoints, namespace: ns })
setDefaultKit(kit)
const cjs = createRequire(import.meta.url)('@etcdkit/core/integration')
assert.equal(cjs.getDefaultKit(), kit, 'one default kit for both builds')
const view = kit.discover('esm')
await view.ready
await kit.register({ service: 'esm', address: '127.0.0.1:4001' })
assert.deepEqual(await registered(kit, ns, 'esm'), [`${ns}services/esm/127.0.0.1:4001`])
await kit.close()
console.log('esm: ok')

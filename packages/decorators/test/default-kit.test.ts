// The framework integrations make their kit the default that decorated instances use.
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { getDefaultKit } from '@etcdkit/core/integration'
import { bindEtcdKit, Config, currentLock, WithLock } from '@etcdkit/decorators'
import { etcdDiscovery as expressDiscovery } from '@etcdkit/express'
import { etcdDiscovery as fastifyDiscovery } from '@etcdkit/fastify'
import { uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import Fastify from 'fastify'
import { etcd, eventually } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test.serial("a Fastify app's kit becomes the default while it is open", async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('deco-fastify')
  const app = Fastify()
  await app.register(fastifyDiscovery, {
    service: 'reports',
    etcd: { endpoints, namespace, logger: silentLogger },
    drainDelay: 0,
  })
  t.is(getDefaultKit(), app.etcd)
  class Job {
    @Config('job.size', { parse: Number, default: 3 })
    size!: number
    constructor() {
      bindEtcdKit(this)
    }
    @WithLock('/jobs/fastify')
    async run() {
      return currentLock()?.key
    }
  }
  const job = new Job()
  await app.etcd.config.set('job.size', '9')
  await eventually(() => job.size === 9, 'the property follows the app kit')
  t.regex((await job.run()) ?? '', /^\/jobs\/fastify\/[0-9a-f]+$/)
  await app.close()
  t.is(getDefaultKit(), undefined, 'the kit the plugin created closed with the app')
})

test.serial("an Express discovery's kit becomes the default", async (t) => {
  const { endpoints } = await etcd()
  const kit = new EtcdKit({ endpoints, namespace: uniquePrefix('deco-express'), logger: silentLogger })
  const discovery = expressDiscovery({ service: 'reports', kit, drainDelay: 0 })
  t.is(getDefaultKit(), kit)
  await discovery.close()
  await kit.close()
  t.is(getDefaultKit(), undefined)
})

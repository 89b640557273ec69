// The ESM side of check.ts under node16 and nodenext, in a program of its own: a project is one or the
// other, and the two builds' types are distinct classes, as their runtime classes are.
import { EtcdKit, type Instance } from '@etcdkit/core'
import { getDefaultKit, inspect } from '@etcdkit/core/integration'
import { WithLock } from '@etcdkit/decorators'
import { etcdDiscovery as expressDiscovery } from '@etcdkit/express'
import { etcdDiscovery } from '@etcdkit/fastify'
import { registerEtcdResolver } from '@etcdkit/grpc'
import Fastify from 'fastify'

export async function main(): Promise<readonly Instance[]> {
  const kit = new EtcdKit({ endpoints: ['127.0.0.1:2379'], logger: console })
  const app = Fastify()
  await app.register(etcdDiscovery, { service: 'orders', kit })
  const users: EtcdKit = app.etcd
  expressDiscovery({ service: 'users', kit })
  registerEtcdResolver(kit)
  class Job {
    @WithLock('/jobs/report')
    async run(): Promise<void> {}
  }
  await new Job().run()
  // @ts-expect-error ttl is a number of seconds
  new EtcdKit({ ttl: '10' })
  // the integration entry's types resolve, and name the same EtcdKit class as the root's
  const queues: Promise<{ name: string }[]> = inspect(kit).queues()
  const fallback: EtcdKit | undefined = getDefaultKit()
  void [queues, fallback]
  return users.discover('users').instances
}

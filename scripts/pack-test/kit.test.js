// Jest (CommonJS, its own module system), as a NestJS project runs its tests.
const { EtcdKit } = require('@etcdkit/core')
const { etcdDiscovery } = require('@etcdkit/fastify')
const { endpoints, namespace, registered } = require('./common.cjs')

test('the packages load under Jest and the kit registers', async () => {
  expect(typeof etcdDiscovery).toBe('function')
  const ns = namespace('jest')
  const kit = new EtcdKit({ endpoints, namespace: ns })
  await kit.register({ service: 'jest', address: '127.0.0.1:4002' })
  expect(await registered(kit, ns, 'jest')).toEqual([`${ns}services/jest/127.0.0.1:4002`])
  await kit.close()
})

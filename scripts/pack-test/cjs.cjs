// A CommonJS consumer: every package loads through require(), and the core works against etcd.
const { EtcdKit } = require('@etcdkit/core')
const { getDefaultKit, setDefaultKit } = require('@etcdkit/core/integration')
const { etcdDiscovery } = require('@etcdkit/fastify')
const express = require('@etcdkit/express')
const grpc = require('@etcdkit/grpc')
const decorators = require('@etcdkit/decorators')
const { assert, endpoints, namespace, registered } = require('./common.cjs')

async function main() {
  assert.equal(typeof etcdDiscovery, 'function')
  assert.equal(typeof express.etcdDiscovery, 'function')
  assert.equal(typeof grpc.registerEtcdResolver, 'function')
  assert.equal(typeof decorators.WithLock, 'function')
  assert.equal(require('@etcdkit/core/package.json').name, '@etcdkit/core')
  const ns = namespace('cjs')
  const kit = new EtcdKit({ endpoints, namespace: ns })
  setDefaultKit(kit)
  // the ESM build of core, loaded beside this one, shares the default kit
  const esm = await import('@etcdkit/core/integration')
  assert.equal(esm.getDefaultKit(), kit, 'one default kit for both builds')
  assert.equal(getDefaultKit(), kit)
  await kit.register({ service: 'cjs', address: '127.0.0.1:4000' })
  assert.deepEqual(await registered(kit, ns, 'cjs'), [`${ns}services/cjs/127.0.0.1:4000`])
  await kit.close()
  console.log('cjs: ok')
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})

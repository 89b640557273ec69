// A CommonJS consumer (require of dist/cjs).
const assert = require('node:assert/strict')
const { EtcdKit } = require('@etcdkit/core')
const { EtcdKitFlagProvider, FlagAdmin } = require('@etcdkit/openfeature')
const { OpenFeature } = require('@openfeature/server-sdk')

async function main() {
  const endpoints = process.env.ETCD_ENDPOINTS.split(',')
  const kit = new EtcdKit({ endpoints, namespace: `pack-test-of-cjs-${process.pid}/` })
  await new FlagAdmin(kit).setBoolean('dark-mode', true)
  await OpenFeature.setProviderAndWait(new EtcdKitFlagProvider({ kit }))
  assert.equal(await OpenFeature.getClient().getBooleanValue('dark-mode', false), true)
  await OpenFeature.close()
  await kit.close()
  console.log('openfeature cjs: ok')
}
main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})

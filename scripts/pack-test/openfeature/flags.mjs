// An ESM consumer: a flag written through FlagAdmin, evaluated through the OpenFeature server SDK.
import assert from 'node:assert/strict'
import { EtcdKit } from '@etcdkit/core'
import { EtcdKitFlagProvider, FlagAdmin } from '@etcdkit/openfeature'
import { OpenFeature } from '@openfeature/server-sdk'

const endpoints = process.env.ETCD_ENDPOINTS.split(',')
const kit = new EtcdKit({ endpoints, namespace: `pack-test-of-esm-${process.pid}/` })
await new FlagAdmin(kit).rollout('new-checkout', 100, { writer: 'pack-test' })
await OpenFeature.setProviderAndWait(new EtcdKitFlagProvider({ kit }))
const details = await OpenFeature.getClient().getBooleanDetails('new-checkout', false)
assert.equal(details.value, true)
assert.equal(details.reason, 'STATIC')
await OpenFeature.close()
await kit.close()
console.log('openfeature esm: ok')

// A rollout of `new-checkout` seen by a NestJS app: off, 1% of instances, 10%, 100%, removed. Run:
// `pnpm --filter @etcdkit/example-flags start` (ETCD_ENDPOINTS from the environment, else a throwaway etcd).
import { EtcdKit } from '@etcdkit/core'
import { FlagAdmin } from '@etcdkit/openfeature'
import { sharedEtcd } from '@etcdkit/testing'
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk'
import { startFlagsExample } from './app.js'

const etcd = await sharedEtcd()
const namespace = `flags-example-${process.pid}/`
const app = await startFlagsExample({ endpoints: etcd.endpoints, namespace })
const url = `${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/checkout`
const ask = async () => JSON.stringify(await (await fetch(url)).json())

// the operator's side: another process writing flags (the same as `etcdkit flags set new-checkout 1%`)
const ops = new EtcdKit({ endpoints: etcd.endpoints, namespace })
const admin = new FlagAdmin(ops)
/** The next PROVIDER_CONFIGURATION_CHANGED the app's provider emits. */
const changed = () =>
  new Promise<void>((resolve) => {
    const handler = () => {
      OpenFeature.removeHandler(ProviderEvents.ConfigurationChanged, handler)
      resolve()
    }
    OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, handler)
  })

console.log('no flag yet:', await ask())
for (const percent of [1, 10, 100]) {
  const seen = changed()
  await admin.rollout('new-checkout', percent, { writer: 'example' })
  await seen
  // one instance: its targetingKey (checkout/127.0.0.1:port) is in or out of the first `percent` buckets
  console.log(`${percent}%:`, await ask())
}
const history = await admin.history('new-checkout')
console.log(
  'history:',
  history.map(
    (h) => `${h.revision} by ${h.writer?.writer}: ${JSON.stringify(h.definition?.targeting ?? 'on')}`,
  ),
)
const seen = changed()
await admin.delete('new-checkout')
await seen
console.log('removed:', await ask())

await app.close()
await ops.close()
await OpenFeature.close()
await etcd.close()

// Type check of the public API as an app sees it (moduleResolution nodenext, CommonJS output).
import { EtcdKit } from '@etcdkit/core'
import { EtcdKitFlagProvider, FlagAdmin, type FlagDefinition } from '@etcdkit/openfeature'
import { OpenFeature, type Provider } from '@openfeature/server-sdk'

const kit = new EtcdKit({})
const provider: Provider = new EtcdKitFlagProvider({ kit, prefix: 'flags/', timeout: 5_000 })
const definition: FlagDefinition = {
  state: 'ENABLED',
  variants: { on: true, off: false },
  defaultVariant: 'off',
}
void new FlagAdmin(kit).set('x', definition, { writer: 'me' })
void OpenFeature.setProviderAndWait(provider)

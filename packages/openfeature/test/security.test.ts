import { EtcdKit, PermissionDeniedError, silentLogger } from '@etcdkit/core'
import { type EtcdCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKitFlagProvider, FlagAdmin } from '../src/index.js'
import { eventually } from './helpers.js'

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd({ auth: true })
})
test.after.always(async () => etcd?.close())

test('the minimal roles of docs/FLAGS.md: a reader of flags/ only evaluates, a writer writes flags only, a kit that may not read flags/ is refused at initialize', async (t) => {
  const ns = uniquePrefix('flags-roles')
  // nothing of config/: the flags are not below the config prefix
  const reader = await etcd.auth!.user('flags-reader', [{ prefix: `${ns}flags/`, permission: 'read' }])
  const writer = await etcd.auth!.user('flags-writer', [
    { prefix: `${ns}flags/`, permission: 'readwrite' },
    { prefix: `${ns}_etcdkit/config-writers/flags/`, permission: 'readwrite' },
  ])
  // the whole config prefix is not enough: the flags are not in it
  const outsider = await etcd.auth!.user('flags-outsider', [{ prefix: `${ns}config/`, permission: 'read' }])
  const kitAs = (auth: { username: string; password: string }) => {
    const kit = new EtcdKit({ endpoints: etcd.endpoints, namespace: ns, auth, logger: silentLogger })
    t.teardown(() => kit.close())
    return kit
  }

  const admin = new FlagAdmin(kitAs(writer))
  const first = await admin.setBoolean('checkout', false, { writer: 'alice' })
  await admin.disable('checkout', { writer: 'bob' })
  const history = await admin.history('checkout')
  t.is(history.length, 2)
  t.is(history[0]!.writer?.writer, 'bob', 'the writer record is written under the minimal role')
  t.like(await admin.rollback('checkout', first, { writer: 'carol' }), { written: true })
  t.deepEqual(
    (await admin.list()).map((f) => f.key),
    ['checkout'],
  )
  // the writer role reaches flags only
  await t.throwsAsync(kitAs(writer).config.set('rate-limit', '5'), { instanceOf: PermissionDeniedError })

  const provider = new EtcdKitFlagProvider({ kit: kitAs(reader) })
  await provider.initialize()
  t.like(provider.resolve('boolean', 'checkout', true), { value: false, variant: 'off' })
  await admin.setBoolean('checkout', true)
  await eventually(() => provider.resolve<boolean>('boolean', 'checkout', false).value, 'the change')
  await provider.onClose()

  const refused = new EtcdKitFlagProvider({ kit: kitAs(outsider), timeout: 10_000 })
  const err = await t.throwsAsync(refused.initialize())
  t.is((err as { code?: string }).code, 'ETCDKIT_PERMISSION_DENIED', String(err))
  t.is(refused.state, 'error')
})

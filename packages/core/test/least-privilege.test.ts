// Least-privilege etcd roles and config (issue 30, findings 1 and 2): a service whose role may read only
// its own config subtree still reads its config; a role made before writer records existed still writes.
import { type EtcdCluster, type EtcdCredentials, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type EtcdKitOptions, type Logger } from '../src/index.js'
import { eventually, within } from './helpers.js'

const CALL_TIMEOUT = 4_000
const kits = new Set<EtcdKit>()

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd({ auth: true })
})
test.after.always(async () => {
  await Promise.allSettled([...kits].map((k) => within(k.close(), 3 * CALL_TIMEOUT, 'close')))
  await etcd?.close()
})

function recordingLogger() {
  const warnings: Array<{ msg: string; obj: unknown }> = []
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (obj: unknown, msg?: string) => void warnings.push({ msg: msg ?? String(obj), obj }),
    error: (obj: unknown, msg?: string) => void warnings.push({ msg: `error: ${msg ?? String(obj)}`, obj }),
  }
  return { logger, warnings }
}

function kitAs(auth: EtcdCredentials, options: EtcdKitOptions): EtcdKit {
  const kit = new EtcdKit({ endpoints: etcd.endpoints, auth, ttl: 3, callTimeout: CALL_TIMEOUT, ...options })
  kits.add(kit)
  return kit
}

test('a role that may write config/ but not _etcdkit/config-writers/: set() writes without the record and warns once naming the prefix (finding 2)', async (t) => {
  const ns = uniquePrefix('lp')
  const user = await etcd.auth!.user(`old-${process.pid}`, [
    { prefix: `${ns}config/`, permission: 'readwrite' },
  ])
  const { logger, warnings } = recordingLogger()
  const kit = kitAs(user, { namespace: ns, logger, service: 'orders' })
  const revision = await kit.config.set('rate', '5', { writer: 'deploy-1' })
  t.regex(revision, /^\d+$/)
  t.is(await kit.config.get('rate'), '5')
  await kit.config.setMany({ rate: '6', burst: '2' })
  t.is(await kit.config.get('burst'), '2')
  const [latest] = await kit.config.history('rate')
  t.is(latest?.value, '6')
  t.is(latest?.writer, undefined, 'no writer recorded')
  const rolled = await kit.config.rollback('rate', revision)
  t.true(rolled.written)
  t.is(await kit.config.get('rate'), '5')
  const told = warnings.filter((w) => /config writer record/.test(w.msg))
  t.is(told.length, 1, JSON.stringify(warnings.map((w) => w.msg)))
  t.true(told[0]!.msg.includes(`${ns}_etcdkit/config-writers/`), told[0]!.msg)
  // a value the role may not write is still refused, naming the config key (with its namespace)
  const denied = await t.throwsAsync(
    kitAs(user, { namespace: `${ns}other/`, logger }).config.set('rate', '1'),
    { code: 'ETCDKIT_PERMISSION_DENIED' },
  )
  t.true(denied!.message.includes(`${ns}other/config/rate`), denied!.message)
})

test('a role that may read only config/{service}/ and some shared keys: values read what it may, live, with one warning naming what it may not (finding 1)', async (t) => {
  const ns = uniquePrefix('lp')
  const root = kitAs(etcd.auth!.root, { namespace: ns, logger: recordingLogger().logger })
  await root.config.setMany({ 'orders/rate': '5', 'shared-ok': 'a', secret: 's', 'billing/rate': '9' })
  const user = await etcd.auth!.user(`orders-${process.pid}`, [
    { prefix: `${ns}config/orders/`, permission: 'read' },
    { prefix: `${ns}config/shared-ok`, permission: 'read', exact: true },
    { prefix: `${ns}config/later`, permission: 'read', exact: true },
  ])
  const { logger, warnings } = recordingLogger()
  const kit = kitAs(user, { namespace: ns, logger, service: 'orders' })
  const rate = kit.config.value('rate', { parse: Number, default: 1 })
  const shared = kit.config.value('shared-ok')
  const secret = kit.config.value('secret', { default: 'none' })
  await within(Promise.all([rate.ready, shared.ready, secret.ready]), 10_000, 'values ready')
  t.is(rate.current, 5)
  t.is(shared.current, 'a')
  t.is(secret.current, 'none', 'a shared key the role may not read counts as not set')
  // live: changes to the service's own keys and to an allowed shared key arrive
  await root.config.set('orders/rate', '6')
  await root.config.set('shared-ok', 'b')
  await eventually(() => rate.current === 6 && shared.current === 'b', 'the changes')
  // a shared key a handle opens later is followed too
  await root.config.set('later', 'x')
  const later = kit.config.value('later')
  await later.ready
  await eventually(() => later.current === 'x', 'a shared key opened later')
  t.false(rate.stale)
  // ONE warning: the prefix that cannot be read, what is read instead, and the shared key refused
  const told = warnings.filter((w) => /config/.test(w.msg))
  t.is(told.length, 1, JSON.stringify(warnings.map((w) => w.msg)))
  t.true(told[0]!.msg.includes(`"${ns}config/"`), told[0]!.msg)
  t.true(told[0]!.msg.includes(`"${ns}config/orders/"`), told[0]!.msg)
  t.true(told[0]!.msg.includes(`"${ns}config/secret"`), told[0]!.msg)
  t.false(told[0]!.msg.includes('billing'), 'other services are not named')
})

test('a role that may read no config at all: values fail as before, with the prefix named (namespace included)', async (t) => {
  const ns = uniquePrefix('lp')
  const user = await etcd.auth!.user(`none-${process.pid}`, [
    { prefix: `${ns}services/`, permission: 'read' },
  ])
  const { logger } = recordingLogger()
  const kit = kitAs(user, { namespace: ns, logger, service: 'orders' })
  const value = kit.config.value('rate')
  const err = await t.throwsAsync(within(value.ready, 10_000, 'ready'), { code: 'ETCDKIT_PERMISSION_DENIED' })
  t.true(err!.message.includes(`"${ns}config/orders/"`), err!.message)
})

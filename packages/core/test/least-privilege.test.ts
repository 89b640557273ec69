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

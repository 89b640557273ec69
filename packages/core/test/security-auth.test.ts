// etcd with mutual TLS and authentication, tokens that expire after 2 idle seconds, least-privilege roles,
// and credentials changed while a kit runs: nothing may hang, and every refusal is a coded error.
import { type EtcdCluster, type EtcdCredentials, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type EtcdKitOptions, type Logger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { eventually, within } from './helpers.js'

const TOKEN_TTL = 2

/** etcd's answers may be slow on a busy machine: bounds are generous, yet every call must settle. */
const CALL_TIMEOUT = 4_000
const kits = new Set<EtcdKit>()

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd({ tls: 'mutual', auth: true, authTokenTtl: TOKEN_TTL })
})
test.after.always(async () => {
  // a test that failed half-way leaves its kit open: close it (bounded) before etcd goes
  await Promise.allSettled([...kits].map((k) => within(k.close(), 3 * CALL_TIMEOUT, 'close')))
  await etcd?.close()
})

/** Log lines at warn and above, for assertions on what was reported. */
function recordingLogger() {
  const lines: Array<{ level: string; msg: string; obj: unknown }> = []
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, msg: msg ?? String(obj), obj })
    }
  const logger: Logger = { debug: () => {}, info: () => {}, warn: at('warn'), error: at('error') }
  return { logger, lines }
}

function secureKit(auth: EtcdCredentials, options: EtcdKitOptions = {}): EtcdKit {
  const tls = etcd.tls!
  const kit = new EtcdKit({
    endpoints: etcd.endpoints,
    tls: { ca: tls.ca, cert: tls.client.cert, key: tls.client.key },
    auth,
    ttl: 3,
    callTimeout: CALL_TIMEOUT,
    logger: recordingLogger().logger,
    ...options,
  })
  kits.add(kit)
  return kit
}

/** A user whose role can read and write only `prefixes` (each under its namespace). */
async function userFor(name: string, prefixes: readonly string[]): Promise<EtcdCredentials> {
  return etcd.auth!.user(
    name,
    prefixes.map((prefix) => ({ prefix, permission: 'readwrite' as const })),
  )
}

test('a role without the prefix: every call that needs it rejects at once with ETCDKIT_PERMISSION_DENIED naming it', async (t) => {
  const ns = uniquePrefix('deny')
  // the kit may use its own config (and its writer records), but not locks/, elections/ nor services/
  const creds = await userFor('deny', [`${ns}config/`, `${ns}_etcdkit/config-writers/`])
  const kit = secureKit(creds, { namespace: ns })
  t.teardown(() => within(kit.close(), 3 * CALL_TIMEOUT, 'close'))
  const denied = { code: 'ETCDKIT_PERMISSION_DENIED' }
  const start = Date.now()
  const acquire = await t.throwsAsync(within(kit.lock('locks/a').acquire(), 15_000, 'acquire'), denied)
  t.regex(acquire?.message ?? '', /locks\/a/)
  await t.throwsAsync(
    within(
      kit.lock('locks/b').run(async () => {}),
      15_000,
      'run',
    ),
    denied,
  )
  await t.throwsAsync(within(kit.election('elections/e').campaign('me'), 15_000, 'campaign'), denied)
  const view = kit.discover('orders')
  const errors: unknown[] = []
  view.on('error', (err) => errors.push(err))
  const ready = await t.throwsAsync(within(view.ready, 15_000, 'discover().ready'), denied)
  t.regex(ready?.message ?? '', /services\/orders\//)
  t.is(errors.length, 1)
  await t.throwsAsync(within(kit.service('orders').request('/'), 15_000, 'request'), denied)
  await t.throwsAsync(within(kit.election('elections/o').observe().ready, 15_000, 'observe().ready'), denied)
  await t.throwsAsync(
    within(kit.register({ service: 'orders', address: '127.0.0.1:1', timeout: 30_000 }), 35_000, 'register'),
    denied,
  )
  t.true(Date.now() - start < 60_000, `${Date.now() - start} ms`)
  // config under its own prefix still works
  await kit.config.set('k', 'v')
  const value = kit.config.value('k')
  await within(value.ready, 15_000, 'config ready')
  t.is(value.current, 'v')
})

test('a config prefix without permission: config.value().ready rejects with ETCDKIT_PERMISSION_DENIED', async (t) => {
  const ns = uniquePrefix('deny-config')
  const creds = await userFor('deny-config', [`${ns}services/`])
  const kit = secureKit(creds, { namespace: ns })
  t.teardown(() => within(kit.close(), 3 * CALL_TIMEOUT, 'close'))
  const err = await t.throwsAsync(within(kit.config.value('x').ready, 15_000, 'config ready'), {
    code: 'ETCDKIT_PERMISSION_DENIED',
  })
  t.regex(err?.message ?? '', /config\//)
})

// serial: it changes users and roles for seconds, which would race the raw etcd3 calls of other tests
test.serial(
  'writes while an operator changes users and roles: none refused because the auth store moved on',
  async (t) => {
    const ns = uniquePrefix('auth-moves')
    const kit = secureKit(await userFor('auth-moves', [`${ns}config/`, `${ns}_etcdkit/config-writers/`]), {
      namespace: ns,
    })
    t.teardown(() => within(kit.close(), 3 * CALL_TIMEOUT, 'close'))
    // etcd refuses a request with "revision of auth store is old" when the auth store changed between its
    // receipt and its apply; nothing was applied, and etcd's Go client sends it again
    let stop = false
    let changes = 0
    const operator = (async () => {
      while (!stop) await userFor(`auth-moves-${changes++}`, [`${ns}other/`])
    })()
    const failures: string[] = []
    let writes = 0
    // 4 s, and on until the operator has made 3 users (each takes a second or more on a busy machine)
    const start = Date.now()
    while (Date.now() - start < 4_000 || (changes < 3 && Date.now() - start < 30_000))
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          kit.config.set(`k${i}`, String(writes)).then(
            () => writes++,
            (err: Error) => failures.push(err.message),
          ),
        ),
      )
    stop = true
    await operator
    t.true(changes >= 3, `the operator changed the auth store (${changes} users made)`)
    t.true(writes > 100, `writes went through (${writes})`)
    t.deepEqual(failures.slice(0, 3), [], `${failures.length} of ${writes + failures.length} writes refused`)
  },
)

// the 40 views and their reads are this test's subject: serial, away from the other tests' user changes
test.serial(
  'views opened together, some of services the role may not read: those fail alone, the others get ready',
  async (t) => {
    const ns = uniquePrefix('deny-some')
    const writer = secureKit(await userFor('deny-some-writer', [`${ns}services/`]), { namespace: ns })
    t.teardown(() => within(writer.close(), 3 * CALL_TIMEOUT, 'close'))
    // 40 services, every fourth one outside the reader's role; 40 views at once queue behind 16 and are
    // read together, so a refused one shares its read with allowed ones
    const services = Array.from({ length: 40 }, (_, i) => (i % 4 === 3 ? `no-${i}` : `ok-${i}`))
    for (const s of services)
      await writer.client.put(`${ns}services/${s}/127.0.0.1:1000`).value('{"Op":0,"Addr":"127.0.0.1:1000"}')
    const reader = secureKit(await userFor('deny-some-reader', [`${ns}services/ok-`]), { namespace: ns })
    t.teardown(() => within(reader.close(), 3 * CALL_TIMEOUT, 'close'))
    const views = services.map((s) => reader.discover(s))
    const settled = await within(
      Promise.allSettled(views.map((v) => v.ready)),
      30_000,
      'every view ready or refused',
    )
    for (const [i, s] of services.entries()) {
      const result = settled[i]!
      if (s.startsWith('ok-')) {
        t.is(result.status, 'fulfilled', s)
        t.is(views[i]!.instances.length, 1, s)
      } else {
        t.is(result.status, 'rejected', s)
        const err = (result as PromiseRejectedResult).reason as { code?: string; message?: string }
        t.is(err.code, 'ETCDKIT_PERMISSION_DENIED', s)
        t.true(err.message?.includes(`services/${s}/`), err.message)
      }
    }
  },
)

test('a wrong password: calls reject with ETCDKIT_AUTH_FAILED, and close() finishes', async (t) => {
  // a generous call timeout: on a busy machine the refused authentication itself may take seconds
  const kit = secureKit({ username: 'root', password: 'not-the-password' }, { callTimeout: 12_000 })
  await t.throwsAsync(within(kit.lock('x').acquire(), 15_000, 'acquire'), { code: 'ETCDKIT_AUTH_FAILED' })
  await t.throwsAsync(within(kit.discover('svc').ready, 15_000, 'discover'), { code: 'ETCDKIT_AUTH_FAILED' })
  await t.throwsAsync(within(kit.config.get('k'), 20_000, 'config.get'), { code: 'ETCDKIT_AUTH_FAILED' })
  await within(kit.close(), 3 * CALL_TIMEOUT, 'close')
  t.true(kit.closed)
})

test('auth tokens expire: a watch opened after the token expired still delivers, and a waiting acquire is woken', async (t) => {
  const ns = uniquePrefix('expiry')
  const creds = await userFor('expiry', [`${ns}`])
  const kit = secureKit(creds, { namespace: ns })
  t.teardown(() => within(kit.close(), 3 * CALL_TIMEOUT, 'close'))
  // open the watch stream with a fresh token, then let that token expire
  const first = kit.discover('a')
  await first.ready
  await new Promise((resolve) => setTimeout(resolve, (TOKEN_TTL + 1.5) * 1000))
  const view = kit.discover('b')
  await within(view.ready, 15_000, 'ready')
  await etcd.etcdctl(['put', `${ns}services/b/127.0.0.1:9`, '127.0.0.1:9'])
  await eventually(() => view.instances.length === 1, 'the new view sees the registration', 15_000)
  // a lock waiter watches its predecessor on the same stream
  await etcd.etcdctl(['put', `${ns}warm`, 'x'])
  const holder = spawnHolder(`${ns}jobs`)
  await holder.waitForLine((l) => l.startsWith(`${ns}jobs/`), 15_000)
  await new Promise((resolve) => setTimeout(resolve, (TOKEN_TTL + 1.5) * 1000))
  const waiting = kit.lock('jobs').acquire({ timeout: 30_000 })
  await new Promise((resolve) => setTimeout(resolve, 500))
  await holder.stop()
  const held = await within(waiting, 20_000, 'the waiter after the holder left')
  t.true(held.held)
  await held.release()
})

test.serial(
  'a watch stream reopened after etcd restarted (every token gone) re-creates every watch',
  async (t) => {
    const ns = uniquePrefix('restart')
    const creds = await userFor('restart', [`${ns}`])
    const kit = secureKit(creds, { namespace: ns })
    t.teardown(() => within(kit.close(), 3 * CALL_TIMEOUT, 'close'))
    const view = kit.discover('svc')
    const limit = kit.config.value('limit', { parse: Number, default: 1 })
    await Promise.all([view.ready, limit.ready])
    await etcd.restart()
    await etcd.etcdctl(['put', `${ns}services/svc/127.0.0.1:7`, '127.0.0.1:7'])
    await etcd.etcdctl(['put', `${ns}config/limit`, '42'])
    await eventually(() => view.instances.length === 1, 'discovery after the restart', 20_000)
    await eventually(() => limit.current === 42, 'config after the restart', 20_000)
    t.is(view.instances[0]?.address, '127.0.0.1:7')
  },
)

function spawnHolder(name: string) {
  return etcd.spawnEtcdctl(['lock', name])
}

test('a password changed while a lock is held: release() and close() finish in bounded time, and the lease is let go', async (t) => {
  const ns = uniquePrefix('passwd')
  const creds = await userFor('passwd', [`${ns}`])
  const { logger, lines } = recordingLogger()
  const kit = secureKit(creds, { namespace: ns, logger, ttl: 4 })
  await kit.register({ service: 'svc', address: '127.0.0.1:5', timeout: 30_000 })
  const held = await kit.lock('jobs').acquire()
  const lease = kit.session.lease!
  await etcd.auth!.changePassword('passwd', 'changed-now')
  await within(held.release(), 2 * CALL_TIMEOUT, 'release()')
  // bounded by 2 x callTimeout (plus the margin of a busy machine)
  await within(kit.close(), 2 * CALL_TIMEOUT + 1_000, 'close()')
  t.true(
    lines.some((l) => l.level === 'warn' && /could not|not deleted|expire/i.test(l.msg)),
    JSON.stringify(lines),
  )
  // no keepalive any more: etcd expires the lease, and with it the lock and the registration
  await eventually(
    async () => !(await etcd.etcdctl(['lease', 'list'])).includes(lease.hex),
    'the lease expired',
    15_000,
  )
  t.is(await etcd.etcdctl(['get', '--prefix', ns]), '')
})

test('a permission revoked while a lock is held: release() and close() finish, the lease is revoked or let go', async (t) => {
  const ns = uniquePrefix('revoke')
  const creds = await userFor('revoke', [`${ns}`])
  const kit = secureKit(creds, { namespace: ns, ttl: 4 })
  await kit.register({ service: 'svc', address: '127.0.0.1:5', timeout: 30_000 })
  const held = await kit.lock('jobs').acquire()
  await etcd.auth!.revoke('revoke', { prefix: ns })
  await within(held.release(), 2 * CALL_TIMEOUT, 'release()')
  await within(kit.close(), 2 * CALL_TIMEOUT + 1_000, 'close()')
  await eventually(
    async () => (await etcd.etcdctl(['get', '--prefix', ns])) === '',
    'the keys are gone',
    15_000,
  )
  t.is(await etcd.etcdctl(['get', '--prefix', ns]), '')
})

test('the minimal role of docs/SECURITY.md runs every feature, and close() revokes the lease', async (t) => {
  const ns = uniquePrefix('minimal')
  // exactly the role docs/SECURITY.md gives for an app using every feature (namespace `ns`)
  const creds = await etcd.auth!.user('minimal', [
    { prefix: `${ns}services/`, permission: 'readwrite' },
    { prefix: `${ns}config/`, permission: 'readwrite' },
    { prefix: `${ns}_etcdkit/config-writers/`, permission: 'readwrite' },
    { prefix: `${ns}sessions/`, permission: 'readwrite' },
    { prefix: `${ns}locks/`, permission: 'readwrite' },
    { prefix: `${ns}elections/`, permission: 'readwrite' },
  ])
  const kit = secureKit(creds, { namespace: ns, service: 'orders' })
  const reg = await within(
    kit.register({ service: 'orders', address: '127.0.0.1:9', timeout: 30_000 }),
    35_000,
    'register',
  )
  const view = kit.discover('orders')
  await within(view.ready, 15_000, 'discover')
  t.is(view.instances.length, 1)
  await kit.config.set('limit', '5')
  await kit.config.set('limit', '6', { service: 'orders' })
  const limit = kit.config.value('limit', { parse: Number, default: 1 })
  await within(limit.ready, 15_000, 'config')
  t.is(limit.current, 6)
  t.is(await kit.config.get('limit'), '5')
  t.true(await kit.config.delete('limit', { service: 'orders' }))
  await eventually(() => limit.current === 5, 'the shared value again')
  const fenced = await kit
    .lock('locks/report')
    .run(async (held) => held.ifOwner({ put: { 'locks/report-state': 'done' } }))
  t.true(fenced)
  const free = await kit.lock('locks/other').tryAcquire()
  t.truthy(free)
  await free?.release()
  const election = kit.election('elections/leader')
  const observer = election.observe()
  await within(observer.ready, 15_000, 'observe')
  const leadership = await within(election.campaign('a'), 15_000, 'campaign')
  await leadership.proclaim('b')
  t.is((await election.leader())?.value, 'b')
  await leadership.resign()
  await reg.deregister()
  await kit.register({ service: 'orders', address: '127.0.0.1:10', timeout: 30_000 })
  const lease = kit.session.lease!
  await within(kit.close(), 15_000, 'close')
  t.false((await etcd.etcdctl(['lease', 'list'])).includes(lease.hex), 'the lease was revoked')
})

test('mutual TLS without a client certificate: calls fail with a coded error within their timeout', async (t) => {
  const kit = new EtcdKit({
    endpoints: etcd.endpoints,
    tls: { ca: etcd.tls!.caFile },
    auth: etcd.auth!.root,
    logger: recordingLogger().logger,
    callTimeout: 1_000,
  })
  kits.add(kit)
  const err = await t.throwsAsync(
    within(kit.register({ service: 's', address: '127.0.0.1:1', timeout: 2_000 }), 15_000, 'register'),
  )
  t.truthy((err as { code?: string })?.code?.startsWith('ETCDKIT_'), err?.message)
})

test('write-only permission on the own registry prefix: register() works and the missing guard is reported, not looped on', async (t) => {
  const ns = uniquePrefix('writeonly')
  const creds = await etcd.auth!.user('writeonly', [{ prefix: `${ns}services/`, permission: 'write' }])
  const { logger, lines } = recordingLogger()
  const kit = secureKit(creds, { namespace: ns, logger })
  await within(kit.register({ service: 'svc', address: '127.0.0.1:3', timeout: 30_000 }), 35_000, 'register')
  await eventually(
    () => lines.some((l) => /cannot watch own registrations/.test(l.msg)),
    'the missing guard reported',
    15_000,
  )
  const opened = kitInternals(kit).watchHub.streamsOpened
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.is(lines.filter((l) => /cannot watch own registrations/.test(l.msg)).length, 1)
  t.is(kitInternals(kit).watchHub.size, 0)
  t.is(kitInternals(kit).watchHub.streamsOpened, opened)
})

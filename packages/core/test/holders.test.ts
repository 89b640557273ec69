// Who is who: each kit's session record on its lease, and holders() mapping a lock's or an election's
// queue to the processes behind it.
import { spawn } from 'node:child_process'
import { hostname } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { spawnEtcdctl } from '@etcdkit/testing'
import test from 'ava'
import type { EtcdKit } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

const fixture = fileURLToPath(new URL('./fixtures/queue-member.ts', import.meta.url))

/** A process that registers `service` at `address`, then queues for `lock`. */
function member(endpoints: readonly string[], ns: string, lock: string, service: string, address: string) {
  const child = spawn(
    process.execPath,
    ['--import=tsx', '--conditions=etcdkit-source', fixture, endpoints.join(','), ns, lock, service, address],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  const events: Array<{ event: string; lease?: string }> = []
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line)))
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr = (stderr + c).slice(-2_000)
  })
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  return {
    child,
    events,
    get stderr() {
      return stderr
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin!.write('exit\n')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
    },
  }
}

async function queueLength(k: EtcdKit, name: string) {
  return (await kitInternals(k).keyspace.list(`${name}/`)).kvs.length
}

test('the session record is JSON on the lease at sessions/{lease hex}, rewritten with the registration', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  await k.register({ service: 'orders', address: '10.0.0.7:3000', metadata: { version: '1.4.0' } })
  const lease = k.session.lease!
  const key = `${k.namespace}sessions/${lease.hex}`
  await eventually(
    async () => (await etcdctl(['get', key, '--print-value-only'])).includes('10.0.0.7'),
    'record rewritten',
  )
  const record = JSON.parse(await etcdctl(['get', key, '--print-value-only']))
  t.deepEqual(Object.keys(record).sort(), ['address', 'hostname', 'pid', 'service', 'startedAt', 'version'])
  t.like(record, { service: 'orders', address: '10.0.0.7:3000', hostname: hostname(), pid: process.pid })
  t.is(record.version, '1.4.0')
  t.false(Number.isNaN(Date.parse(record.startedAt)))
  t.regex(await etcdctl(['get', key, '-w', 'json']), new RegExp(`"lease":${lease.id}\\b`))
  await k.close()
  t.is(await etcdctl(['get', key, '--print-value-only']), '', 'the record went with the lease')
})

test('holders(): a holder and two waiters in three processes, listed from a fourth in queue order', async (t) => {
  const { endpoints } = await etcd()
  await using observer = await kit()
  const ns = observer.namespace
  const name = 'jobs/report'
  const members: Array<ReturnType<typeof member>> = []
  t.teardown(() => Promise.all(members.map((m) => m.stop())))
  // one at a time, so the queue order is the spawn order
  for (const [i, service] of ['alpha', 'beta', 'gamma'].entries()) {
    const m = member(endpoints, ns, name, service, `127.0.0.1:${7001 + i}`)
    members.push(m)
    await eventually(
      async () => (await queueLength(observer, name)) === i + 1,
      `process ${i} queued (${m.stderr})`,
      30_000,
    )
  }
  await eventually(async () => members[0]!.events.some((e) => e.event === 'held'), 'the first holds')
  // etcdctl lock queues last: no session record
  const ctl = spawnEtcdctl(endpoints, ['lock', `${ns}${name}`])
  t.teardown(() => ctl.stop())
  await eventually(async () => (await queueLength(observer, name)) === 4, 'etcdctl queued')

  const queue = await observer.lock(name).holders()
  t.deepEqual(
    queue.map((e) => [e.position, e.role, e.record === 'unknown' ? 'unknown' : e.record.service]),
    [
      [0, 'holder', 'alpha'],
      [1, 'waiter', 'beta'],
      [2, 'waiter', 'gamma'],
      [3, 'waiter', 'unknown'],
    ],
  )
  for (const [i, m] of members.entries()) {
    const e = queue[i]!
    t.like(e.record, {
      address: `127.0.0.1:${7001 + i}`,
      hostname: hostname(),
      pid: m.child.pid,
      version: '1.2.3',
    })
    t.is(e.key, `${name}/${e.lease}`)
    t.is(e.lease, m.events.find((ev) => ev.event === 'registered')?.lease ?? 'none')
    t.false(e.own)
    t.is(e.forMs, undefined, "another process's times are not known")
  }
  t.true(queue[0]!.createRevision < queue[1]!.createRevision)
  t.true(queue[2]!.createRevision < queue[3]!.createRevision)

  // releasing moves the queue on: beta holds
  members[0]!.child.stdin!.write('release\n')
  await eventually(async () => members[1]!.events.some((e) => e.event === 'held'), 'beta holds')
  const after = await observer.lock(name).holders()
  t.deepEqual(
    after.map((e) => (e.record === 'unknown' ? 'unknown' : e.record.service)),
    ['beta', 'gamma', 'unknown'],
  )
})

test('holders(): an etcdctl lock holder is listed as unknown; this kit waiting behind it knows its own wait', async (t) => {
  const { endpoints } = await etcd()
  await using k = await kit({ service: 'reports' })
  const name = 'jobs/ctl-holds'
  const ctl = spawnEtcdctl(endpoints, ['lock', `${k.namespace}${name}`])
  t.teardown(() => ctl.stop())
  await ctl.waitForLine((l) => l.startsWith(`${k.namespace}${name}/`))
  const acquiring = k.lock(name).acquire()
  await eventually(async () => (await queueLength(k, name)) === 2, 'queued behind etcdctl')
  const queue = await k.lock(name).holders()
  t.is(queue.length, 2)
  t.like(queue[0], { role: 'holder', record: 'unknown', own: false, forMs: undefined })
  t.like(queue[1], { role: 'waiter', own: true, lease: k.session.lease!.hex })
  t.like(queue[1]!.record, { service: 'reports', address: null, pid: process.pid })
  t.true(typeof queue[1]!.forMs === 'number' && queue[1]!.forMs >= 0)
  await ctl.stop()
  const held = await acquiring
  const mine = await k.lock(name).holders()
  t.like(mine, [{ role: 'holder', own: true }])
  t.true(typeof mine[0]!.forMs === 'number')
  await held.release()
  t.deepEqual(await k.lock(name).holders(), [])
})

test('election holders(): leader and candidates with their proposals; etcdctl elect is unknown', async (t) => {
  const { endpoints } = await etcd()
  await using a = await kit({ service: 'sched-a' })
  await using b = await kit({ service: 'sched-b', namespace: a.namespace })
  const name = 'leader/scheduler'
  const leadership = await a.election(name).campaign('a-proposal')
  const campaigning = b.election(name).campaign('b-proposal')
  await eventually(async () => (await queueLength(a, name)) === 2, 'b campaigns')
  const ctl = spawnEtcdctl(endpoints, ['elect', `${a.namespace}${name}`, 'ctl-proposal'])
  t.teardown(() => ctl.stop())
  await eventually(async () => (await queueLength(a, name)) === 3, 'etcdctl campaigns')
  const queue = await b.election(name).holders()
  t.deepEqual(
    queue.map((e) => [e.role, e.value, e.record === 'unknown' ? 'unknown' : e.record.service, e.own]),
    [
      ['holder', 'a-proposal', 'sched-a', false],
      ['waiter', 'b-proposal', 'sched-b', true],
      ['waiter', 'ctl-proposal', 'unknown', false],
    ],
  )
  t.is(typeof queue[1]!.forMs, 'number', 'its own campaign time is known')
  await leadership.resign()
  await campaigning
})

import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { spawnEtcdctl, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { QueueHub } from '../src/coordination/queue.js'
import { EtcdKit, type HeldLock, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { etcd, eventually, kit, settled } from './helpers.js'

test.after.always(async () => (await etcd()).close())

/** The keys under `{name}/` in etcd, kit-relative, oldest first. */
async function queueKeys(k: EtcdKit, name: string): Promise<string[]> {
  const res = await kitInternals(k).keyspace.kv.range({
    ...kitInternals(k).keyspace.range(`${name}/`),
    sort_order: 'Ascend',
    sort_target: 'Create',
  })
  return res.kvs.map((kv) => kitInternals(k).keyspace.name(kv.key))
}

async function kits(n: number, ns: string, endpoints?: string[]): Promise<EtcdKit[]> {
  return Promise.all(
    Array.from({ length: n }, () =>
      endpoints ? new EtcdKit({ endpoints, namespace: ns, logger: silentLogger }) : kit({ namespace: ns }),
    ),
  )
}

test('the lock key is {name}/{lease hex}, empty, on the session lease; the fencing token is its create revision', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const held = await k.lock('/jobs/report').acquire()
  const lease = k.session.lease!
  t.is(held.key, `/jobs/report/${lease.hex}`)
  t.is(held.name, '/jobs/report')
  t.true(held.held)
  t.is(typeof held.fencingToken, 'bigint')
  const json = await etcdctl(['get', `${k.namespace}${held.key}`, '-w', 'json'])
  t.is(/"create_revision":(\d+)/.exec(json)?.[1], String(held.fencingToken))
  t.is(/"lease":(\d+)/.exec(json)?.[1], lease.id)
  t.is(await etcdctl(['get', '--print-value-only', `${k.namespace}${held.key}`]), '\n')
  await held.release()
  t.false(held.held)
  t.is((held.signal.reason as { code: string }).code, 'ETCDKIT_LOCK_RELEASED')
  t.deepEqual(await queueKeys(k, '/jobs/report'), [])
})

test('etcdctl lock holding the lock blocks acquire until it exits', async (t) => {
  const { endpoints } = await etcd()
  await using k = await kit()
  const name = 'jobs/ctl-first'
  const ctl = spawnEtcdctl(endpoints, ['lock', `${k.namespace}${name}`])
  t.teardown(() => ctl.stop())
  const line = await ctl.waitForLine((l) => l.startsWith(`${k.namespace}${name}/`))
  const acquiring = k.lock(name).acquire()
  await sleep(500)
  t.false(await settled(acquiring), 'acquired while etcdctl holds the lock')
  // the etcdctl key is first, ours waits behind it
  const expected = [line.slice(k.namespace.length), `${name}/${k.session.lease?.hex}`]
  await eventually(async () => (await queueKeys(k, name)).join() === expected.join(), 'queued behind etcdctl')
  await ctl.stop()
  const held = await acquiring
  t.deepEqual(await queueKeys(k, name), [held.key])
  await held.release()
})

test('an etcdkit holder blocks etcdctl lock until release', async (t) => {
  const { endpoints } = await etcd()
  await using k = await kit()
  const name = 'jobs/kit-first'
  const held = await k.lock(name).acquire()
  const ctl = spawnEtcdctl(endpoints, ['lock', `${k.namespace}${name}`])
  t.teardown(() => ctl.stop())
  await eventually(async () => (await queueKeys(k, name)).length === 2, 'etcdctl queued behind us')
  await sleep(300)
  t.deepEqual(ctl.lines, [], 'etcdctl acquired while etcdkit holds the lock')
  await held.release()
  const line = await ctl.waitForLine((l) => l.startsWith(`${k.namespace}${name}/`))
  t.not(line, `${k.namespace}${held.key}`)
})

test('contenders are served in the order they asked (create revision), one at a time', async (t) => {
  const ns = uniquePrefix('fifo')
  const all = await kits(10, ns)
  t.teardown(() => Promise.all(all.map((k) => k.close())))
  const name = 'jobs/fifo'
  const first = await all[0]!.lock(name).acquire()
  const order: number[] = []
  const done: Promise<void>[] = []
  // each asks only once the one before it is queued in etcd: the asking order is known
  for (let i = 1; i < all.length; i++) {
    done.push(
      all[i]!.lock(name)
        .acquire()
        .then(async (h) => {
          order.push(i)
          await sleep(5)
          await h.release()
        }),
    )
    await eventually(async () => (await queueKeys(all[0]!, name)).length === i + 1, `contender ${i} queued`)
  }
  await first.release()
  await Promise.all(done)
  t.deepEqual(order, [1, 2, 3, 4, 5, 6, 7, 8, 9])
})

test('10 contenders from separate kits: 300 handoffs, FIFO by fencing token, never two holders', async (t) => {
  const ns = uniquePrefix('contend')
  const all = await kits(10, ns)
  t.teardown(() => Promise.all(all.map((k) => k.close())))
  const name = 'jobs/contended'
  const target = 300
  let holders = 0
  let maxHolders = 0
  const tokens: bigint[] = []
  const perKit = new Array<number>(all.length).fill(0)
  let refused = 0
  await Promise.all(
    all.map(async (k, i) => {
      while (tokens.length < target) {
        const held = await k.lock(name).acquire({ timeout: 20_000 })
        holders++
        maxHolders = Math.max(maxHolders, holders)
        tokens.push(held.fencingToken)
        perKit[i]!++
        // a guarded write succeeds while held
        if (!(await held.ifOwner({ put: { [`${name}-last`]: String(held.fencingToken) } }))) refused++
        holders--
        await held.release()
      }
    }),
  )
  t.is(maxHolders, 1)
  t.is(refused, 0)
  t.true(tokens.length >= target)
  for (let i = 1; i < tokens.length; i++) t.true(tokens[i - 1]! < tokens[i]!, `token ${i} not increasing`)
  // with everyone asking again right after releasing, FIFO means everyone gets about the same share
  for (const n of perKit) t.true(n >= target / all.length - 3, `unfair shares ${perKit.join(',')}`)
  t.deepEqual(await queueKeys(all[0]!, name), [])
})

test('a release is one delete and nothing else: the next waiter learns its turn from the watch, counted by etcd itself', async (t) => {
  // an etcd of our own: its gRPC counters then count only this test's calls
  await using cluster = await startEtcd()
  const metricsUrl = `http://${cluster.endpoints[0]}/metrics`
  const calls = async () => {
    const text = await (await fetch(metricsUrl)).text()
    const count = (method: string) =>
      Number(
        new RegExp(
          `grpc_server_started_total\\{grpc_method="${method}",grpc_service="etcdserverpb.KV"[^}]*\\} (\\d+)`,
        ).exec(text)?.[1],
      )
    return { range: count('Range'), txn: count('Txn'), del: count('DeleteRange') }
  }
  const ns = uniquePrefix('herd')
  const all = await kits(7, ns, cluster.endpoints)
  t.teardown(() => Promise.all(all.map((k) => k.close())))
  const name = 'jobs/herd'
  let held: HeldLock = await all[0]!.lock(name).acquire()
  const waiting: Promise<HeldLock>[] = []
  for (let i = 1; i < all.length; i++) {
    waiting.push(all[i]!.lock(name).acquire())
    await eventually(async () => (await queueKeys(all[0]!, name)).length === i + 1, `waiter ${i} queued`)
  }
  // every kit's watch of the queue is created, and the reads of the waits' setup are over
  await eventually(async () => {
    const text = await (await fetch(metricsUrl)).text()
    return Number(/^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text)?.[1]) >= all.length
  }, 'a watch per kit')
  let last = await calls()
  await eventually(async () => {
    await sleep(200)
    const now = await calls()
    const quiet = JSON.stringify(now) === JSON.stringify(last)
    last = now
    return quiet
  }, 'no reads for 200 ms')
  for (let i = 0; i < waiting.length; i++) {
    const before = await calls()
    await held.release()
    held = await waiting[i]!
    await sleep(200) // room for any other waiter to (wrongly) read
    const after = await calls()
    // the release is one DeleteRange; the next waiter knew every key ahead of it and that its own key
    // outlived them from the queue's watch: it reads nothing, and nobody else does
    t.deepEqual(
      { range: after.range - before.range, txn: after.txn - before.txn, del: after.del - before.del },
      { range: 0, txn: 0, del: 1 },
      `handoff ${i + 1}`,
    )
    for (const w of waiting.slice(i + 1)) t.false(await settled(w))
  }
  await held.release()
})

test('lock fan-out: a handoff in a queue of 60 (a kit each) reaches a bounded number of watches, not every waiter', async (t) => {
  // an etcd of our own: its event counter then counts only this test's deliveries
  await using cluster = await startEtcd()
  const metricsUrl = `http://${cluster.endpoints[0]}/metrics`
  const sent = async () =>
    Number(/^etcd_debugging_mvcc_events_total (\d+)/m.exec(await (await fetch(metricsUrl)).text())?.[1])
  const ns = uniquePrefix('fanout')
  const n = 60
  const all = await kits(n, ns, cluster.endpoints)
  t.teardown(() => Promise.all(all.map((k) => k.close())))
  const name = 'jobs/fanout'
  const first = await all[0]!.lock(name).acquire()
  const order: number[] = []
  const waiting = all.slice(1).map(async (k, i) => {
    const held = await k.lock(name).acquire({ timeout: 60_000 })
    order.push(i)
    await held.release()
  })
  await eventually(
    async () => (await queueKeys(all[0]!, name)).length === n,
    'every contender queued',
    30_000,
  )
  await sleep(300) // the waiters' watches are created
  const before = await sent()
  await first.release()
  await Promise.all(waiting)
  await sleep(300)
  const perHandoff = ((await sent()) - before) / n
  t.is(order.length, n - 1)
  // each deletion reaches the waiters within AHEAD_LIMIT (16) of the front, the kits that let go of the
  // lock within the last 16 deletions and the one deep waiter watching that key: about 33 at most, however
  // long the queue (every one of the 59 waiters' prefix watches, before)
  t.true(perHandoff <= 36, `${perHandoff.toFixed(1)} watch events per handoff`)
  t.log(`${perHandoff.toFixed(1)} watch events per handoff`)
})

test('a holder frozen past its TTL loses the lock to the next waiter; on resume its signal has aborted and its guarded write is refused', async (t) => {
  const { endpoints } = await etcd()
  const ns = uniquePrefix('frozen')
  const name = 'jobs/frozen'
  const fixture = fileURLToPath(new URL('./fixtures/lock-holder.ts', import.meta.url))
  const child = spawn(
    process.execPath,
    ['--import=tsx', '--conditions=etcdkit-source', fixture, endpoints.join(','), ns, name, '2'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  t.teardown(() => {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const next = async () => JSON.parse((await lines.next()).value as string) as Record<string, unknown>
  const heldLine = await next()
  t.is(heldLine.event, 'held')
  const oldToken = BigInt(heldLine.token as string)

  await using waiter = await kit({ namespace: ns })
  const acquiring = waiter.lock(name).acquire({ timeout: 20_000 })
  await eventually(async () => (await queueKeys(waiter, name)).length === 2, 'waiter queued')
  child.kill('SIGSTOP')
  const stoppedAt = Date.now()
  const held = await acquiring
  t.true(Date.now() - stoppedAt >= 1_500, 'the lock moved before the holder TTL (2 s) could have run out')
  t.true(held.fencingToken > oldToken)

  child.kill('SIGCONT')
  child.stdin!.write('check\n')
  const check = await next()
  t.is(check.aborted, true, 'the frozen holder signal did not abort on resume')
  t.is(check.code, 'ETCDKIT_LOCK_LOST')
  t.is(check.guarded, false, 'a guarded write with the old fencing token was applied')
  t.is(check.held, false)
  // never silently taken again: only the new holder's key is there
  t.deepEqual(check.keys, [held.key])
  t.true(await held.ifOwner({ put: { fenced: `written by ${held.fencingToken}` } }))
  const fenced = await kitInternals(waiter).keyspace.kv.range({
    key: kitInternals(waiter).keyspace.key('fenced'),
  })
  t.is(fenced.kvs[0]?.value.toString(), `written by ${held.fencingToken}`)
  child.stdin!.write('exit\n')
  await held.release()
})

/** A lock queue of its own on `prefix` (no kit lock uses it) and a predecessor key put under it. */
async function queueWithPredecessor(t: { teardown(fn: () => void): void }, k: EtcdKit, prefix: string) {
  const queues = new QueueHub(kitInternals(k).keyspace, kitInternals(k).watchHub, silentLogger)
  t.teardown(() => queues.close())
  const key = kitInternals(k).keyspace.key(`${prefix}predecessor`)
  const created = BigInt(
    (await kitInternals(k).keyspace.kv.put({ key, value: Buffer.alloc(0) })).header.revision,
  )
  return { q: queues.get(prefix), key, created }
}

test("a deletion between a waiter's read and its watch's creation is not lost: the waiter reads again", async (t) => {
  await using k = await kit()
  // the lock queue's watch starts from "now" (a start in the past is served late by etcd's unsynced
  // watcher group); a predecessor deleted before it exists must not leave its waiter waiting
  const { q, key, created } = await queueWithPredecessor(t, k, 'race/')
  const readRevision = created // the waiter's read found the predecessor here...
  await kitInternals(k).keyspace.kv.deleteRange({ key }) // ...and it is deleted before the watch exists
  t.true(q.cover(readRevision))
  const told = await Promise.race([
    new Promise((resolve) =>
      q.onDelete(key, created, { deleted: () => resolve('deleted'), reset: () => resolve('reset') }),
    ),
    sleep(5_000, 'still waiting'),
  ])
  t.is(told, 'reset', 'told to read again')
  // now that the watch is confirmed, a read older than its start is refused, and a new read accepted
  t.false(q.cover(readRevision))
  t.true(q.cover(BigInt((await kitInternals(k).keyspace.kv.range({ key })).header.revision)))
})

test('a waiter does not rely on a new watch alone until it has delivered: etcd may have put it in its unsynced group', async (t) => {
  await using k = await kit()
  // etcd registers a watch "from now" after reading its revision: a write in between leaves the watch in its
  // unsynced group, served up to 100 ms late, and nothing in the reply tells. Waiters on a watch that has not
  // delivered anything yet read again shortly; once it has delivered, they wait for it.
  const { q, key, created } = await queueWithPredecessor(t, k, 'unproven/')
  // as if read at a revision no other test's writes reach meanwhile: the watch is not reset at its creation
  // (the previous test's case), so only its being unproven can send the waiter to read again
  const far = created + 1_000_000n
  t.true(q.cover(far))
  t.is(
    await Promise.race([q.waitDelete(key, created, []), sleep(1_000, 'still waiting')]),
    false,
    'read again',
  )
  // a deletion under the prefix reaches the watch: it is synced, and waiters trust it from then on
  const other = kitInternals(k).keyspace.key('unproven/other')
  await kitInternals(k).keyspace.kv.put({ key: other, value: Buffer.alloc(0) })
  const gone = BigInt((await kitInternals(k).keyspace.kv.deleteRange({ key: other })).header.revision)
  await eventually(() => q.deletedAfter(other, 0n) === gone, 'the watch delivered the deletion')
  t.true(q.cover(far))
  t.is(await Promise.race([q.waitDelete(key, created, []), sleep(1_000, 'still waiting')]), 'still waiting')
})

test('timeout and abort while waiting delete the waiting key and do not stall the queue', async (t) => {
  const ns = uniquePrefix('abort')
  const [a, b, c, d] = await kits(4, ns)
  t.teardown(() => Promise.all([a, b, c, d].map((k) => k!.close())))
  const name = 'jobs/abort'
  const held = await a!.lock(name).acquire()
  const keyOf = (k: EtcdKit) => `${name}/${k.session.lease?.hex}`
  const queued = (k: EtcdKit) => async () => (await queueKeys(a!, name)).includes(keyOf(k))
  // b's timeout must outlast queueing c and d behind it, even on a loaded machine: leases first, and 5 s
  await Promise.all([b, c, d].map((k) => k!.session.leaseReady()))
  const startedAt = Date.now()
  const timingOut = b!.lock(name).acquire({ timeout: 5_000 })
  timingOut.catch(() => {})
  await eventually(queued(b!), 'b queued')
  const ctrl = new AbortController()
  const aborting = c!.lock(name).acquire({ signal: ctrl.signal })
  aborting.catch(() => {})
  await eventually(queued(c!), 'c queued')
  const last = d!.lock(name).acquire() // waits for c, which waits for b
  await eventually(queued(d!), 'd queued')
  t.deepEqual(await queueKeys(a!, name), [held.key, keyOf(b!), keyOf(c!), keyOf(d!)])

  const err = await t.throwsAsync(timingOut)
  t.is((err as { code?: string }).code, 'ETCDKIT_LOCK_TIMEOUT')
  t.regex(err!.message, /within 5000 ms/)
  t.true(Date.now() - startedAt >= 4_900)
  ctrl.abort(new Error('caller gave up'))
  await t.throwsAsync(aborting, { message: 'caller gave up' })
  await eventually(async () => (await queueKeys(a!, name)).length === 2, 'waiting keys deleted')
  t.deepEqual(await queueKeys(a!, name), [held.key, `${name}/${d!.session.lease!.hex}`])

  const releasedAt = Date.now()
  await held.release()
  const next = await last
  t.true(Date.now() - releasedAt < 2_000, 'the queue stalled')
  t.deepEqual(await queueKeys(a!, name), [next.key])
  await next.release()
})

test('two acquires of one name in one kit take turns in process (one lease, one key)', async (t) => {
  await using k = await kit()
  const name = 'jobs/local'
  const first = await k.lock(name).acquire()
  const second = k.lock(name).acquire()
  await sleep(300)
  t.false(await settled(second))
  t.deepEqual(await queueKeys(k, name), [first.key])
  t.is(await k.lock(name).tryAcquire(), undefined, 'tryAcquire while held in process')
  await first.release()
  const h2 = await second
  t.true(h2.fencingToken > first.fencingToken)
  t.false(await first.ifOwner(), 'the old token is refused after re-acquiring on the same key')
  t.true(await h2.ifOwner())
  // an abort while waiting in process leaves the slot usable
  const ctrl = new AbortController()
  const third = k.lock(name).acquire({ signal: ctrl.signal })
  ctrl.abort(new Error('stop'))
  await t.throwsAsync(third, { message: 'stop' })
  await h2.release()
  const h4 = await k.lock(name).acquire({ timeout: 5_000 })
  await h4.release()
})

test('tryAcquire takes a free lock and writes nothing when it is busy', async (t) => {
  const ns = uniquePrefix('try')
  const [a, b] = await kits(2, ns)
  t.teardown(() => Promise.all([a!.close(), b!.close()]))
  const name = 'jobs/try'
  const held = await a!.lock(name).tryAcquire()
  t.truthy(held)
  t.is(await b!.lock(name).tryAcquire(), undefined)
  t.deepEqual(await queueKeys(a!, name), [held!.key])
  await held!.release()
  const other = await b!.lock(name).tryAcquire()
  t.truthy(other)
  await other!.release()
})

test('run() passes signal and fencing token, and releases when fn throws', async (t) => {
  await using k = await kit()
  const name = 'jobs/run'
  let seen: HeldLock | undefined
  const result = await k.lock(name).run(async ({ signal, fencingToken, ...rest }) => {
    t.false(signal.aborted)
    t.is(typeof fencingToken, 'bigint')
    seen = rest as HeldLock
    return 42
  })
  t.is(result, 42)
  t.truthy(seen)
  await t.throwsAsync(
    k.lock(name).run(() => {
      throw new Error('job failed')
    }),
    { message: 'job failed' },
  )
  t.deepEqual(await queueKeys(k, name), [])
})

test('the guard applies writes only while the lock is held', async (t) => {
  await using k = await kit()
  const held = await k.lock('jobs/guard').acquire()
  t.true(await held.ifOwner({ put: { 'guarded/a': '1', 'guarded/b': Buffer.from('2') } }))
  t.true(await held.ifOwner({ delete: ['guarded/b'] }))
  const { kvs } = await kitInternals(k).keyspace.list('guarded/')
  t.deepEqual(
    kvs.map((kv) => [kitInternals(k).keyspace.name(kv.key), kv.value.toString()]),
    [['guarded/a', '1']],
  )
  await held.release()
  t.false(await held.ifOwner({ put: { 'guarded/a': 'late' } }))
  const err = await t.throwsAsync(held.assertOwner({ delete: ['guarded/a'] }))
  t.is((err as { code?: string }).code, 'ETCDKIT_NOT_LOCK_OWNER')
  t.is((await kitInternals(k).keyspace.list('guarded/')).kvs[0]?.value.toString(), '1')
})

test('a held lock reports its loss at once when its key is deleted or its lease revoked, and is not taken again', async (t) => {
  const { etcdctl } = await etcd()
  await using k = await kit()
  const held = await k.lock('jobs/lost').acquire()
  await etcdctl(['del', `${k.namespace}${held.key}`])
  await eventually(() => held.signal.aborted, 'signal aborted after the key was deleted')
  t.is((held.signal.reason as { code?: string }).code, 'ETCDKIT_LOCK_LOST')
  await held.release()

  const again = await k.lock('jobs/lost').acquire()
  const leaseId = k.session.lease!.id
  await etcdctl(['lease', 'revoke', BigInt(leaseId).toString(16)])
  await eventually(() => again.signal.aborted, 'signal aborted after the lease was revoked')
  t.is((again.signal.reason as { code?: string }).code, 'ETCDKIT_LOCK_LOST')
  await eventually(() => k.session.lease !== undefined && k.session.lease.id !== leaseId, 'a new lease')
  await sleep(300)
  t.deepEqual(await queueKeys(k, 'jobs/lost'), [], 'the lost lock was taken again')
  await again.release()
})

test('a waiter whose lease is lost queues again under the next lease and still gets the lock', async (t) => {
  const { etcdctl } = await etcd()
  const ns = uniquePrefix('requeue')
  const [a, b] = await kits(2, ns)
  t.teardown(() => Promise.all([a!.close(), b!.close()]))
  const name = 'jobs/requeue'
  const held = await a!.lock(name).acquire()
  const waiting = b!.lock(name).acquire({ timeout: 20_000 })
  await eventually(async () => (await queueKeys(a!, name)).length === 2, 'b queued')
  const oldLease = b!.session.lease!
  await etcdctl(['lease', 'revoke', oldLease.hex])
  await eventually(
    async () =>
      (await queueKeys(a!, name)).includes(`${name}/${b!.session.lease?.hex}`) &&
      b!.session.lease?.id !== oldLease.id,
    'b queued again on its new lease',
  )
  t.false(await settled(waiting))
  await held.release()
  const next = await waiting
  t.is(next.key, `${name}/${b!.session.lease!.hex}`)
  t.not(next.key, `${name}/${oldLease.hex}`)
  await next.release()
})

test('close() releases held locks and rejects waiting acquires', async (t) => {
  const ns = uniquePrefix('close')
  const [a, b] = await kits(2, ns)
  t.teardown(() => Promise.all([a!.close(), b!.close()]))
  const held = await a!.lock('jobs/close').acquire()
  const waiting = b!.lock('jobs/close').acquire()
  await eventually(async () => (await queueKeys(a!, 'jobs/close')).length === 2, 'b queued')
  await b!.close()
  const err = await t.throwsAsync(waiting)
  t.is((err as { code?: string }).code, 'ETCDKIT_CLOSED')
  await a!.close()
  t.true(held.signal.aborted)
  t.throws(() => a!.lock('jobs/close'), { code: 'ETCDKIT_CLOSED' } as never)
  await using c = await kit({ namespace: ns })
  t.deepEqual(await queueKeys(c, 'jobs/close'), [])
})

test('bad lock names, timeouts and options are rejected with the bad value in the message', async (t) => {
  await using k = await kit()
  for (const [name, shown] of [
    ['', '""'],
    [42, '42'],
    [undefined, 'undefined'],
    ['a\nb', '"a\\nb"'],
    ['x'.repeat(1025), 'xxxx'],
  ] as const) {
    const err = t.throws(() => k.lock(name as string))
    t.is((err as { code?: string }).code, 'ETCDKIT_INVALID_ARGUMENT')
    t.true(err!.message.includes(shown), err!.message)
  }
  for (const [timeout, shown] of [
    [-1, '-1'],
    [0, '0'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    ['100', '"100"'],
  ] as const) {
    const err = await t.throwsAsync(k.lock('x').acquire({ timeout: timeout as number }))
    t.is((err as { code?: string }).code, 'ETCDKIT_INVALID_ARGUMENT')
    t.true(err!.message.includes(`lock timeout ${shown}`), err!.message)
  }
  await t.throwsAsync(k.lock('x').acquire({ signal: 'no' as never }), { message: /invalid signal "no"/ })
  await t.throwsAsync(k.lock('x').acquire(7 as never), { message: /invalid acquire options 7/ })
  await t.throwsAsync(k.lock('x').run('nope' as never), { message: /invalid lock.run\(\) callback "nope"/ })
  const held = await k.lock('x').acquire()
  await t.throwsAsync(held.ifOwner({ put: { a: 1 as never } }), {
    message: /the value of "a" is not a string/,
  })
  await t.throwsAsync(held.ifOwner({ delete: [''] }), { message: /"" is not a key/ })
  await held.release()
  t.throws(() => new EtcdKit({ ttl: 0 }), { message: /invalid ttl 0/ })
  t.deepEqual(await queueKeys(k, 'x'), [])
})

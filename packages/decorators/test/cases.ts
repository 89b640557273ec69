// The decorator tests, written once and run twice: by legacy/decorators.test.ts on classes compiled with
// experimentalDecorators, and by standard/decorators.test.ts on the same classes compiled as standard
// (TC39) decorators.
import { type EtcdKit, NoEtcdKitError } from '@etcdkit/core'
import { clearDefaultKit, getDefaultKit, setDefaultKit } from '@etcdkit/core/integration'
import { bindEtcdKit, configReady, decoratedMembers, unbindEtcdKit } from '@etcdkit/decorators'
import { uniquePrefix } from '@etcdkit/testing'
import type { TestFn } from 'ava'
import { etcd, eventually, functionTag, kits, readTag } from './helpers.js'
import type * as Fixtures from './legacy/fixtures.js'

export function decoratorCases(test: TestFn, fixtures: typeof Fixtures, mode: 'legacy' | 'standard') {
  const { reportJob, inspector, limits, defaultLimits, unbound } = fixtures
  const open: EtcdKit[] = []
  const make = async (count: number) => {
    const list = await kits(count)
    open.push(...list)
    return list
  }
  test.after.always(async () => {
    await Promise.all(open.map((k) => k.close()))
    await (await etcd()).close()
  })

  test(`${mode}: two instances calling the same @WithLock method at once never overlap`, async (t) => {
    const [a, b] = await make(2)
    const ReportJob = reportJob(uniquePrefix('jobs'))
    const log: Fixtures.Interval[] = []
    const jobA = new ReportJob(log)
    const jobB = new ReportJob(log)
    bindEtcdKit(jobA, a!)
    bindEtcdKit(jobB, b!)
    const calls = []
    for (let i = 0; i < 3; i++) calls.push(jobA.run(`a${i}`, 60), jobB.run(`b${i}`, 60))
    const results = await Promise.all(calls)
    t.deepEqual(results, ['a0', 'b0', 'a1', 'b1', 'a2', 'b2'])
    t.is(log.length, 6)
    const sorted = [...log].sort((x, y) => x.enter - y.enter)
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!
      const next = sorted[i]!
      t.true(next.enter >= prev.exit, `${next.who} entered before ${prev.who} left`)
    }
  })

  test(`${mode}: wait: false skips at once while another instance holds the lock, then runs`, async (t) => {
    const [a, b] = await make(2)
    const lock = uniquePrefix('jobs')
    const Holder = reportJob(lock)
    const Skipper = reportJob(lock, { wait: false })
    const holder = new Holder()
    const skipper = new Skipper()
    bindEtcdKit(holder, a!)
    bindEtcdKit(skipper, b!)
    const holding = holder.run('holder', 1_500)
    await eventually(() => holder.inside === 1, 'the holder is inside the method')
    t.is(await skipper.run('skipper', 0), undefined)
    t.is(holder.inside, 1, 'the skip returned while the holder was still inside')
    t.is(skipper.log.length, 0, 'the skipped body did not run')
    t.is(await holding, 'holder')
    t.is(await skipper.run('skipper', 0), 'skipper', 'with the lock free it runs')
  })

  test(`${mode}: wait: false calls onBusy with this and the arguments`, async (t) => {
    const [a, b] = await make(2)
    const lock = uniquePrefix('jobs')
    const busy: Array<{ self: unknown; args: unknown[] }> = []
    const Holder = reportJob(lock)
    const Skipper = reportJob(lock, {
      wait: false,
      onBusy(this: unknown, ...args: unknown[]) {
        busy.push({ self: this, args })
        return 'busy'
      },
    })
    const holder = new Holder()
    const skipper = new Skipper()
    bindEtcdKit(holder, a!)
    bindEtcdKit(skipper, b!)
    const holding = holder.run('holder', 1_000)
    await eventually(() => holder.inside === 1, 'the holder is inside the method')
    t.is(await skipper.run('skipper', 5), 'busy')
    t.is(holder.inside, 1)
    t.is(busy.length, 1)
    t.is(busy[0]!.self, skipper)
    t.deepEqual(busy[0]!.args, ['skipper', 5])
    await holding
  })

  test(`${mode}: inside the method currentLock() has the signal and fencing token; losing the lock aborts it`, async (t) => {
    const [a] = await make(1)
    const lock = uniquePrefix('jobs')
    const Inspector = inspector(lock)
    const inspect = new Inspector()
    bindEtcdKit(inspect, a!)
    const holding = inspect.hold()
    await eventually(() => inspect.entered, 'the method is running')
    const { etcdctl } = await etcd()
    const keys = await etcdctl(['get', '--prefix', '--keys-only', `${a!.namespace}${lock}/`])
    t.regex(keys, new RegExp(`${lock}/[0-9a-f]+`))
    // someone deletes the lock key: the holder is told through the signal
    await etcdctl(['del', '--prefix', `${a!.namespace}${lock}/`])
    const seen = await holding
    t.is(seen.self, 'inspector', 'this is the instance')
    t.is(seen.name, lock)
    t.is(typeof seen.token, 'bigint')
    t.true(seen.token! > 0n)
    t.true(seen.held)
    t.is((seen.reason as { code?: string }).code, 'ETCDKIT_LOCK_LOST')
  })

  test(`${mode}: a @WithLock call inside another of the same lock runs at once with the same token`, async (t) => {
    const [a] = await make(1)
    const Inspector = inspector(uniquePrefix('jobs'))
    const inspect = new Inspector()
    bindEtcdKit(inspect, a!)
    const { token, inner } = await inspect.outer()
    t.is(typeof token, 'bigint')
    t.is(inner, token)
  })

  test(`${mode}: etcdctl put of a @Config key reaches the property and @OnConfigChange; invalid values keep the last good one`, async (t) => {
    const [a] = await make(1)
    const key = `limits/${uniquePrefix('rate').slice(0, -1)}`
    const Limits = limits(key)
    const limitsA = new Limits()
    bindEtcdKit(limitsA, a!)
    t.is(limitsA.limit, 10, 'the default before anything is stored')
    const { etcdctl } = await etcd()
    const etcdKey = `${a!.namespace}config/${key}`
    await etcdctl(['put', etcdKey, '42'])
    await eventually(() => limitsA.limit === 42, 'the property shows 42')
    await eventually(() => limitsA.seen.includes(42), '@OnConfigChange got 42')
    t.deepEqual(limitsA.seen, [42])
    for (const bad of ['abc', '-5', '1.5']) {
      await etcdctl(['put', '--', etcdKey, bad])
      // the text property (no parse) sees every value: once it shows this one, the parsed one has refused it
      await eventually(() => limitsA.text === bad, `the text property shows ${bad}`)
      t.is(limitsA.limit, 42, `${bad} is refused`)
    }
    await etcdctl(['put', etcdKey, '7'])
    await eventually(() => limitsA.limit === 7, 'the property shows 7')
    t.deepEqual(limitsA.seen, [42, 7], 'refused values never reach the handler')
    t.throws(
      () => {
        ;(limitsA as { limit: number }).limit = 3
      },
      { message: /Limits\.limit is the live @Config/ },
    )
    unbindEtcdKit(limitsA)
    await etcdctl(['put', etcdKey, '8'])
    await a!.config.set(key, '9') // a round trip after the put: the unbound instance would have seen 8
    t.is(limitsA.limit, 7, 'an unbound instance keeps its last value')
    t.deepEqual(limitsA.seen, [42, 7])
  })

  test(`${mode}: configReady() resolves once @Config properties hold etcd's value, not the default`, async (t) => {
    const [writer, reader] = await make(2)
    const key = `limits/${uniquePrefix('ready').slice(0, -1)}`
    await writer!.config.set(key, '42')
    const Limits = limits(key)
    const instance = new Limits()
    bindEtcdKit(instance, reader!)
    t.is(instance.limit, 10, 'the default until the first read')
    await configReady(instance, { timeout: 10_000 })
    t.is(instance.limit, 42, 'the value in etcd once ready')
    t.is(instance.text, '42')
    await configReady(instance) // already read: at once
    // an instance bound later on the same kit is ready at once (the kit's config is already mirrored)
    const other = new Limits()
    bindEtcdKit(other, reader!)
    t.is(other.limit, 42)
    await configReady({}) // nothing to wait for
  })

  test(`${mode}: configReady() with etcd unreachable rejects with ETCDKIT_ETCD_UNAVAILABLE after its timeout`, async (t) => {
    const { EtcdKit, silentLogger } = await import('@etcdkit/core')
    const dead = new EtcdKit({ endpoints: ['127.0.0.1:1'], logger: silentLogger, callTimeout: 200 })
    open.push(dead)
    const Limits = limits('limits/unreachable')
    const instance = new Limits()
    bindEtcdKit(instance, dead)
    const started = Date.now()
    const err = await t.throwsAsync(configReady(instance, { timeout: 300 }), {
      message: /Limits \("limits\/unreachable"\) was not read from etcd within 300 ms/,
    })
    t.is((err as { code?: string } | undefined)?.code, 'ETCDKIT_ETCD_UNAVAILABLE')
    t.true(Date.now() - started < 5_000)
    t.is(instance.limit, 10, 'the default stays')
    const aborted = new AbortController()
    const waiting = configReady(instance, { signal: aborted.signal })
    aborted.abort(new Error('stop'))
    await t.throwsAsync(waiting, { message: 'stop' })
    await t.throwsAsync(() => configReady(instance, { timeout: -1 }), { code: 'ETCDKIT_INVALID_ARGUMENT' })
  })

  test(`${mode}: two instances bound to two kits each follow their own kit's service overrides`, async (t) => {
    const { endpoints } = await etcd()
    const [base] = await make(1)
    const { EtcdKit, silentLogger } = await import('@etcdkit/core')
    const orders = new EtcdKit({
      endpoints,
      namespace: base!.namespace,
      service: 'orders',
      logger: silentLogger,
    })
    open.push(orders)
    const key = 'batch'
    const Limits = limits(key)
    const shared = new Limits()
    const own = new Limits()
    bindEtcdKit(shared, base!)
    bindEtcdKit(own, orders)
    await base!.config.set(key, '20')
    await base!.config.set(key, '30', { service: 'orders' })
    await eventually(() => shared.limit === 20 && own.limit === 30, 'each instance reads its own layer')
    t.deepEqual([shared.limit, own.limit], [20, 30])
  })

  test(`${mode}: this, the method's name and other decorators' metadata are preserved`, async (t) => {
    const [a] = await make(1)
    const ReportJob = reportJob(uniquePrefix('jobs'))
    const Limits = limits('meta/limit')
    t.is(ReportJob.prototype.run.name, 'run')
    t.is(readTag(ReportJob, 'run'), 'report')
    t.is(functionTag(ReportJob.prototype.run), 'report', 'metadata on the function object survives wrapping')
    t.is(readTag(Limits, 'onLimit'), 'limit-handler')
    t.is(Limits.prototype.onLimit.name, 'onLimit')
    const members = decoratedMembers(Limits).map((m) => `${m.kind}:${String(m.member)}`)
    t.deepEqual(members.sort(), ['change:onLimit', 'config:limit', 'config:text'])
    t.deepEqual(
      decoratedMembers(ReportJob).map((m) => `${m.kind}:${String(m.member)}`),
      ['lock:run'],
    )
    const job = new ReportJob()
    bindEtcdKit(job, a!)
    t.is(await job.run('me', 1), 'me')
    t.is(job.log.length, 1, 'the body ran with the instance as this')
  })

  test.serial(`${mode}: with no kit, each decorated member fails naming its class and member`, async (t) => {
    t.is(getDefaultKit(), undefined)
    const Unbound = unbound('nothing/here', uniquePrefix('jobs'))
    const u = new Unbound()
    const err = await t.throwsAsync(u.work(), { instanceOf: NoEtcdKitError })
    t.regex(err.message, /Unbound\.work \(@WithLock\(".*"\)\) has no EtcdKit/)
    t.is(err.code, 'ETCDKIT_NO_KIT')
    // legacy decorators with define semantics only get their getter once bound: bind to "the default"
    bindEtcdKit(u)
    t.throws(() => u.value, {
      instanceOf: NoEtcdKitError,
      message: /Unbound\.value \(@Config\("nothing\/here"\)\)/,
    })
  })

  test.serial(
    `${mode}: the default kit is used when nothing is bound, and dropped when it closes`,
    async (t) => {
      const [a, b] = await make(2)
      const key = `limits/${uniquePrefix('rate').slice(0, -1)}`
      const lock = uniquePrefix('jobs')
      const DefaultLimits = defaultLimits(key, lock)
      setDefaultKit(a!)
      try {
        const first = new DefaultLimits()
        await a!.config.set(key, '11')
        await eventually(() => first.limit === 11, 'the default kit feeds the property')
        await eventually(() => first.seen.includes(11), 'and the handler')
        t.is(typeof (await first.token()), 'bigint')
        setDefaultKit(b!)
        await b!.config.set(key, '12') // one namespace: both kits see it
        await eventually(() => first.limit === 12, 'still live')
        await a!.close()
        t.is(getDefaultKit(), b, 'a closed kit is no longer the default')
        const second = new DefaultLimits()
        t.is(typeof (await second.token()), 'bigint')
        await eventually(() => second.limit === 12, 'a new instance uses the remaining default')
        // the first instance's kit closed: it keeps its last value, then follows the default again on use
        t.is(first.limit, 12)
      } finally {
        clearDefaultKit(a!)
        clearDefaultKit(b!)
      }
      t.is(getDefaultKit(), undefined)
    },
  )
}

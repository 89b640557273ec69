import { setTimeout as sleep } from 'node:timers/promises'
import { InvalidArgumentError, silentLogger } from '@etcdkit/core'
import * as grpc from '@grpc/grpc-js'
import test from 'ava'
// the kit's keyspace and watch hub are private: core's internal accessor, for measuring them
import { kitInternals } from '../../core/src/kit.js'
import { registerEtcdResolver, registerGrpcServer } from '../src/index.js'
import { echo, etcd, eventually, helloClient, kit, resolverFor, startHello } from './helpers.js'

test.after.always(async () => (await etcd()).close())

/** Counts replies per server name. */
function tally(replies: string[]) {
  const counts: Record<string, number> = {}
  for (const r of replies) {
    const name = r.split(':')[0]!
    counts[name] = (counts[name] ?? 0) + 1
  }
  return counts
}

test('100 Echo calls from one client are spread round robin across two registered servers', async (t) => {
  await using k = await kit()
  const [a, b] = await Promise.all([startHello('a'), startHello('b')])
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  await registerGrpcServer(k, { server: b.server, service: 'hello', address: b.address })
  const resolver = resolverFor(k)
  const client = helloClient(`${resolver.service}:///hello`)
  t.teardown(() => {
    client.close()
    a.server.forceShutdown()
    b.server.forceShutdown()
  })
  // until both connections are up, so the split measures the balancer and not connection timing
  const seen = new Set<string>()
  for (let i = 0; i < 200 && seen.size < 2; i++) seen.add((await echo(client, 'warm-up'))[0]!)
  t.is(seen.size, 2, 'both servers should answer during warm-up')
  const replies: string[] = []
  for (let i = 0; i < 100; i++) replies.push(await echo(client, `m${i}`))
  const counts = tally(replies)
  t.log(counts)
  t.is(counts.a, 50)
  t.is(counts.b, 50)
  // round robin alternates: no two consecutive calls on the same server
  t.true(replies.every((r, i) => i === 0 || r[0] !== replies[i - 1]![0]))
})

test('a server registered mid-run receives calls within a second', async (t) => {
  await using k = await kit()
  const [a, b, c] = await Promise.all([startHello('a'), startHello('b'), startHello('c')])
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  await registerGrpcServer(k, { server: b.server, service: 'hello', address: b.address })
  const resolver = resolverFor(k)
  const client = helloClient(`${resolver.service}:///hello`)
  t.teardown(() => {
    client.close()
    for (const s of [a, b, c]) s.server.forceShutdown()
  })
  await echo(client, 'warm-up')
  let registeredAt = 0
  let firstOnC = 0
  let failures = 0
  const run = (async () => {
    const until = Date.now() + 3_000
    while (Date.now() < until && firstOnC === 0) {
      try {
        const r = await echo(client, 'x')
        if (r.startsWith('c:') && firstOnC === 0) firstOnC = performance.now()
      } catch {
        failures++
      }
    }
  })()
  await sleep(300)
  await registerGrpcServer(k, { server: c.server, service: 'hello', address: c.address })
  registeredAt = performance.now()
  await run
  t.is(failures, 0)
  t.true(firstOnC > 0, 'the third server received no call')
  t.log(`first call on the new server ${(firstOnC - registeredAt).toFixed(1)} ms after its registration`)
  t.true(firstOnC - registeredAt < 1_000)
})

test('a server shut down mid-run (deregistered first) causes no failed call', async (t) => {
  await using k = await kit()
  const [a, b] = await Promise.all([startHello('a'), startHello('b')])
  // grpc-js clients survive a graceful shutdown even without it (GOAWAY; round robin picks only ready
  // connections), so check the order itself: etcd has answered the key's delete when the server starts
  // shutting down (a spy on the delete, since a read racing the delete in etcd proves nothing)
  const key = kitInternals(k).keyspace.key(`services/hello/${a.address}`)
  const kv = kitInternals(k).keyspace.kv
  // a deregistration deletes in one txn guarded by the key's lease
  const txn = kv.txn.bind(kv)
  let deleted = false
  kv.txn = (...args: Parameters<typeof kv.txn>) =>
    txn(...args).then((res) => {
      const deletes = (args[0].success ?? []).map((op) => op.request_delete_range?.key)
      if (res.succeeded && deletes.some((k) => k && Buffer.compare(Buffer.from(k), key) === 0)) deleted = true
      return res
    })
  let deletedAtShutdown: boolean | undefined
  const original = a.server.tryShutdown
  a.server.tryShutdown = (callback) => {
    deletedAtShutdown = deleted
    original.call(a.server, callback)
  }
  const regA = await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  await registerGrpcServer(k, { server: b.server, service: 'hello', address: b.address })
  // the client in another kit (its own etcd connection and watch), as in another process
  await using clientKit = await kit({ namespace: k.namespace })
  const resolver = resolverFor(clientKit)
  const client = helloClient(`${resolver.service}:///hello`)
  t.teardown(() => {
    client.close()
    a.server.forceShutdown()
    b.server.forceShutdown()
  })
  await echo(client, 'warm-up')
  const errors: string[] = []
  let ok = 0
  let stop = false
  // four callers at once, so calls are in flight on both servers when one shuts down
  const workers = Array.from({ length: 4 }, async () => {
    while (!stop) {
      try {
        await echo(client, 'x')
        ok++
      } catch (err) {
        errors.push(String(err))
      }
    }
  })
  // counted in calls, not time: a loaded machine serves fewer calls per second
  await eventually(() => a.calls >= 20 && b.calls >= 20, 'both servers serving')
  await regA.close() // deregister, then tryShutdown: in-flight calls finish
  const servedAtClose = a.calls
  const bAtClose = b.calls
  await eventually(() => b.calls >= bAtClose + 100, '100 more calls, all on b')
  stop = true
  await Promise.all(workers)
  t.deepEqual(errors, [])
  t.is(deletedAtShutdown, true, 'the server began shutting down before its key was deleted')
  t.is(a.calls, servedAtClose, 'server a served calls after it was shut down')
  t.log(`${ok} calls, a served ${servedAtClose}, b served ${b.calls}`)
})

test('both target forms resolve, with the default schemes', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  registerEtcdResolver(k)
  const byService = helloClient('etcdv3:///hello')
  const byPrefix = helloClient(`etcd:///${k.registryPrefix}hello`)
  t.teardown(() => {
    byService.close()
    byPrefix.close()
    a.server.forceShutdown()
  })
  t.is(await echo(byService, 'one'), 'a:one')
  t.is(await echo(byPrefix, 'two'), 'a:two')
  // Go users dial the prefix with a trailing slash (its resolver matches raw key prefixes)
  const withSlash = helloClient(`etcd:///${k.registryPrefix}hello/`)
  t.teardown(() => withSlash.close())
  t.is(await echo(withSlash, 'three'), 'a:three')
})

test('a prefix that is not {registryPrefix}{service} is refused when the client is created', async (t) => {
  await using k = await kit()
  const resolver = resolverFor(k)
  const err = t.throws(() => helloClient(`${resolver.prefix}:///other/hello`))
  t.regex(err.message, /other\/hello/)
  t.regex(err.message, /registryPrefix/)
  t.throws(() => helloClient(`${resolver.service}:///bad name`), { message: /bad name/ })
})

test('an unknown service fails at once with UNAVAILABLE naming the target', async (t) => {
  await using k = await kit()
  const resolver = resolverFor(k)
  const target = `${resolver.service}:///nobody`
  const client = helloClient(target)
  t.teardown(() => client.close())
  const started = performance.now()
  const err = await t.throwsAsync<grpc.ServiceError>(echo(client, 'x', 5_000))
  t.is(err.code, grpc.status.UNAVAILABLE)
  t.true(err.message.includes(target), err.message)
  t.true(performance.now() - started < 2_000, 'the call waited for its deadline')
})

test('a service whose last instance leaves fails with UNAVAILABLE, and recovers when one comes back', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  const reg = await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  const resolver = resolverFor(k)
  const target = `${resolver.service}:///hello`
  const client = helloClient(target)
  t.teardown(() => {
    client.close()
    a.server.forceShutdown()
  })
  t.is(await echo(client, 'x'), 'a:x')
  await reg.deregister()
  // the server itself still runs: calls stop reaching it once the client has seen the deletion
  let err: grpc.ServiceError | undefined
  await eventually(async () => {
    err = await echo(client, 'x').then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    )
    return err !== undefined
  }, 'a call failing after the deregistration')
  t.is(err!.code, grpc.status.UNAVAILABLE)
  t.true(err!.message.includes(target), err!.message)
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  let answer = ''
  await eventually(async () => {
    answer = await echo(client, 'y').catch(() => '')
    return answer !== ''
  }, 'a call succeeding after the registration')
  t.is(answer, 'a:y')
})

test('Stream works through the resolver', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  const resolver = resolverFor(k)
  const client = helloClient(`${resolver.service}:///hello`)
  t.teardown(() => {
    client.close()
    a.server.forceShutdown()
  })
  const got: string[] = []
  for await (const msg of client.Stream({ message: 's' }, { deadline: Date.now() + 5_000 }))
    got.push((msg as { message: string }).message)
  t.deepEqual(got, ['a:s:0', 'a:s:1', 'a:s:2'])
})

test("a channel's own grpc.service_config wins over the resolver's round robin", async (t) => {
  await using k = await kit()
  const [a, b] = await Promise.all([startHello('a'), startHello('b')])
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  await registerGrpcServer(k, { server: b.server, service: 'hello', address: b.address })
  const resolver = resolverFor(k)
  const client = helloClient(`${resolver.service}:///hello`, {
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ pick_first: {} }] }),
  })
  t.teardown(() => {
    client.close()
    a.server.forceShutdown()
    b.server.forceShutdown()
  })
  const replies: string[] = []
  for (let i = 0; i < 20; i++) replies.push(await echo(client, 'x'))
  t.is(Object.keys(tally(replies)).length, 1, 'pick_first sends every call to one server')
})

test('a server registered by Go (naming/endpoints JSON, written with etcdctl) is reached', async (t) => {
  const warnings: string[] = []
  await using k = await kit({
    logger: { ...silentLogger, warn: (obj, msg) => warnings.push(`${msg} ${JSON.stringify(obj)}`) },
  })
  const { etcdctl } = await etcd()
  const a = await startHello('go')
  const key = `${k.namespace}${k.registryPrefix}hello/${a.address}`
  await etcdctl(['put', key, JSON.stringify({ Op: 0, Addr: a.address, Metadata: null })])
  // Go accepts any Addr: one without a port is skipped, not a broken endpoint
  await etcdctl(['put', `${k.namespace}${k.registryPrefix}hello/e1`, JSON.stringify({ Addr: '10.9.9.9' })])
  const resolver = resolverFor(k)
  const client = helloClient(`${resolver.prefix}:///${k.registryPrefix}hello`)
  t.teardown(() => {
    client.close()
    a.server.forceShutdown()
  })
  for (let i = 0; i < 4; i++) t.is(await echo(client, 'x'), 'go:x')
  t.is(warnings.length, 1)
  // discovery skips it with the reason (every registry value goes through the one address check)
  t.regex(warnings[0]!, /cannot be read.*hello\/e1.*invalid Addr.*host:port/)
})

test('the registration is Go naming/endpoints JSON, with no metadata unless given, and leaves on tryShutdown', async (t) => {
  await using k = await kit()
  const { etcdctl } = await etcd()
  const [a, b] = await Promise.all([startHello('a'), startHello('b')])
  // no metadata: exactly what Go's endpoints.Manager writes, and what Go gRPC clients can take
  const reg = await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  const key = `${k.namespace}services/hello/${a.address}`
  t.is(await etcdctl(['get', key, '--print-value-only']), `{"Op":0,"Addr":"${a.address}","Metadata":null}\n`)
  t.is(reg.key, `services/hello/${a.address}`)
  // metadata when asked for
  await registerGrpcServer(k, {
    server: b.server,
    service: 'hello',
    address: b.address,
    metadata: { version: '1.0.0', protocol: 'grpc' },
  })
  t.is(
    await etcdctl(['get', `${k.namespace}services/hello/${b.address}`, '--print-value-only']),
    `{"Op":0,"Addr":"${b.address}","Metadata":{"version":"1.0.0","protocol":"grpc"}}\n`,
  )
  await new Promise<void>((resolve, reject) => a.server.tryShutdown((err) => (err ? reject(err) : resolve())))
  t.is(await etcdctl(['get', key]), '')
  b.server.forceShutdown()
})

test('registerGrpcServer checks its options', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  t.teardown(() => a.server.forceShutdown())
  await t.throwsAsync(registerGrpcServer(k, { server: a.server, service: 'hello' }), {
    message: /port or address/,
  })
  await t.throwsAsync(registerGrpcServer(k, { server: a.server, service: 'hello', port: 0 }), {
    message: /invalid port 0/,
  })
  await t.throwsAsync(
    registerGrpcServer(k, {
      server: a.server,
      service: 'hello',
      port: a.port,
      metadata: { protocol: 'http' },
    }),
    { message: /protocol "http"/ },
  )
  await t.throwsAsync(registerGrpcServer(k, { server: a.server, service: 'bad name', port: a.port }), {
    message: /bad name/,
  })
  // a misspelt option is refused, not ignored (drainDelay would have been 0)
  await t.throwsAsync(
    registerGrpcServer(k, {
      server: a.server,
      service: 'hello',
      port: a.port,
      drainDelayMs: 500,
    } as Parameters<typeof registerGrpcServer>[1]),
    { instanceOf: InvalidArgumentError, message: /unknown registerGrpcServer option "drainDelayMs"/ },
  )
  // longer than a Node timer takes: it would fire at once, not after ~25 days
  await t.throwsAsync(
    registerGrpcServer(k, { server: a.server, service: 'hello', port: a.port, drainDelay: 2 ** 31 }),
    { instanceOf: InvalidArgumentError, message: /invalid registerGrpcServer drainDelay 2147483648/ },
  )
  const { etcdctl } = await etcd()
  t.is((await etcdctl(['get', '--prefix', k.namespace])).trim(), '', 'nothing registered')
})

test('with only a port, the host address is advertised', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  t.teardown(() => a.server.forceShutdown())
  const reg = await registerGrpcServer(k, { server: a.server, service: 'hello', port: a.port })
  t.regex(reg.address, new RegExp(`^\\d+\\.\\d+\\.\\d+\\.\\d+:${a.port}$`))
})

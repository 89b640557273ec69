import { setTimeout as sleep } from 'node:timers/promises'
import * as grpc from '@grpc/grpc-js'
import test from 'ava'
// the kit's keyspace and watch hub are private: core's internal accessor, for measuring them
import { kitInternals } from '../../core/src/kit.js'
import { registerEtcdResolver, registerGrpcServer } from '../src/index.js'
import { echo, etcd, eventually, helloClient, kit, resolverFor, startHello } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('a channel opens one watch on its first call and closes it when the client closes', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  t.teardown(() => a.server.forceShutdown())
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  await using clientKit = await kit({ namespace: k.namespace })
  const resolver = resolverFor(clientKit)
  const client = helloClient(`${resolver.service}:///hello`)
  t.is(kitInternals(clientKit).watchHub.size, 0, 'a channel watches before it is used')
  t.is(await echo(client, 'x'), 'a:x')
  t.is(kitInternals(clientKit).watchHub.size, 1)
  client.close()
  await eventually(() => kitInternals(clientKit).watchHub.size === 0, 'the watch to end with the channel')
})

test('an idle channel drops its watch, and opens it again on the next call', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  t.teardown(() => a.server.forceShutdown())
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  await using clientKit = await kit({ namespace: k.namespace })
  const resolver = resolverFor(clientKit)
  const client = helloClient(`${resolver.service}:///hello`, { 'grpc.client_idle_timeout_ms': 1_000 })
  t.teardown(() => client.close())
  t.is(await echo(client, 'x'), 'a:x')
  t.is(kitInternals(clientKit).watchHub.size, 1)
  await eventually(
    () => kitInternals(clientKit).watchHub.size === 0,
    'the idle channel to drop its watch',
    5_000,
  )
  // changes while idle are seen: a second server registered now takes calls
  const b = await startHello('b')
  t.teardown(() => b.server.forceShutdown())
  await registerGrpcServer(k, { server: b.server, service: 'hello', address: b.address })
  const names = new Set<string>()
  for (let i = 0; i < 10; i++) names.add((await echo(client, 'y')).split(':')[0]!)
  t.deepEqual([...names].sort(), ['a', 'b'])
  t.is(kitInternals(clientKit).watchHub.size, 1)
})

test('the kit registered last for a scheme serves new channels; unregister() refuses new ones', async (t) => {
  await using k1 = await kit()
  await using k2 = await kit()
  const [a, b] = await Promise.all([startHello('a'), startHello('b')])
  t.teardown(() => {
    a.server.forceShutdown()
    b.server.forceShutdown()
  })
  await registerGrpcServer(k1, { server: a.server, service: 'hello', address: a.address })
  await registerGrpcServer(k2, { server: b.server, service: 'hello', address: b.address })
  const first = resolverFor(k1)
  const c1 = helloClient(`${first.service}:///hello`)
  t.teardown(() => c1.close())
  t.is(await echo(c1, 'x'), 'a:x')
  const second = registerEtcdResolver(k2, { serviceScheme: first.service, prefixScheme: first.prefix })
  const c2 = helloClient(`${first.service}:///hello`)
  t.teardown(() => c2.close())
  t.is(await echo(c2, 'x'), 'b:x')
  t.is(await echo(c1, 'x'), 'a:x', 'a channel keeps the kit it was created with')
  first.unregister() // no longer the registered kit: changes nothing
  const c3 = helloClient(`${first.service}:///hello`)
  t.teardown(() => c3.close())
  t.is(await echo(c3, 'x'), 'b:x')
  second.unregister()
  t.throws(() => helloClient(`${first.service}:///hello`), { message: /no EtcdKit is registered/ })
  t.is(await echo(c2, 'x'), 'b:x', 'existing channels keep working')
})

test('a channel created after its kit closed fails calls with UNAVAILABLE naming the target', async (t) => {
  const k = await kit()
  const resolver = resolverFor(k)
  await k.close()
  const target = `${resolver.service}:///hello`
  const client = helloClient(target)
  t.teardown(() => client.close())
  const err = await t.throwsAsync<grpc.ServiceError>(echo(client, 'x', 5_000))
  t.is(err.code, grpc.status.UNAVAILABLE)
  t.true(err.message.includes(target) && err.message.includes('closed'), err.message)
})

test('after its kit closes, a channel keeps serving calls on its last list', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  t.teardown(() => a.server.forceShutdown())
  await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
  const clientKit = await kit({ namespace: k.namespace })
  const resolver = resolverFor(clientKit)
  const client = helloClient(`${resolver.service}:///hello`)
  t.teardown(() => client.close())
  t.is(await echo(client, 'x'), 'a:x')
  await clientKit.close()
  await sleep(100)
  t.is(await echo(client, 'y'), 'a:y')
})

test('registerEtcdResolver checks its options', async (t) => {
  await using k = await kit()
  t.throws(() => registerEtcdResolver(k, { serviceScheme: 'bad scheme' }), { message: /"bad scheme"/ })
  t.throws(() => registerEtcdResolver(k, { serviceScheme: 'same', prefixScheme: 'same' }), {
    message: /must differ/,
  })
})

// gRPC targets per registry dialect: a server registered in several dialects is dialled through each.
import test from 'ava'
import { registerGrpcServer } from '../src/index.js'
import { echo, etcd, helloClient, kit, resolverFor, startHello } from './helpers.js'

test.after.always(async () => (await etcd()).close())

test('a server registered in several dialects is reached through each dialect scheme and go-zero target form', async (t) => {
  await using k = await kit()
  const a = await startHello('a')
  const reg = await registerGrpcServer(k, {
    server: a.server,
    service: 'hello',
    address: a.address,
    dialects: ['etcd', 'go-zero', 'kratos', 'kitex', 'hertz', 'go-micro'],
  })
  const resolver = resolverFor(k)
  const targets = [
    `${resolver.service}:///hello`,
    `${resolver.prefix}+go-zero:///hello`,
    `${resolver.prefix}+kratos:///hello`,
    `${resolver.prefix}+kitex:///hello`,
    `${resolver.prefix}+hertz:///hello`,
    `${resolver.prefix}+go-micro:///hello`,
    // go-zero's own form: the etcd hosts in the path, the Key in the query
    `${resolver.prefix}:///127.0.0.1:2379,127.0.0.1:22379?key=hello.rpc`,
  ]
  t.true(targets.every((target) => resolver.schemes.includes(target.split(':')[0]!)))
  const clients = targets.map((target) => helloClient(target))
  t.teardown(() => {
    for (const c of clients) c.close()
    a.server.forceShutdown()
  })
  for (const [i, c] of clients.entries()) t.is(await echo(c, `m${i}`), `a:m${i}`, targets[i])
  // the Kratos instance says it speaks gRPC: its endpoint is grpc://, what Kratos' gRPC clients dial
  const kratos = k.discover('hello', { dialect: 'kratos' })
  await kratos.ready
  t.is(kratos.instances[0]?.metadata.scheme, 'grpc')
  kratos.close()
  // the etcd dialect's value is unchanged: no metadata, which Go gRPC clients on etcd's resolver need
  const etcdView = k.discover('hello')
  await etcdView.ready
  t.deepEqual(etcdView.instances[0]?.metadata, {})
  etcdView.close()
  await reg.deregister()
  t.is(reg.key, `services/hello/${a.address}`)
})

test('a go-zero target whose key names no service is refused, naming the target', async (t) => {
  await using k = await kit()
  const resolver = resolverFor(k)
  t.throws(() => helloClient(`${resolver.prefix}:///127.0.0.1:2379?key=bad%20key`), { message: /bad key/ })
})

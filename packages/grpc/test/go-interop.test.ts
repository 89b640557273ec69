import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { buildGoProgram, spawnLines } from '@etcdkit/testing'
import test from 'ava'
import { registerGrpcServer } from '../src/index.js'
import { echo, etcd, eventually, helloClient, kit, resolverFor, startHello } from './helpers.js'

// The seed's scenario across languages: a Go gRPC client using etcd's own resolver
// (go.etcd.io/etcd/clientv3/naming/resolver, target etcd:///services/hello) calls Node servers registered by
// etcdkit, and a Go server registered with naming/endpoints is called by Node through etcdkit's resolver.
// The Go side is test/fixtures/go-hello/main.go.

const program = await buildGoProgram(fileURLToPath(new URL('fixtures/go-hello/', import.meta.url)))
// Without Go and etcd's Go client sources these are reported as skipped, with the reason; the test command
// installs both where it can (as root, with apt-get), and CI always has them.
const goTest = program.ok ? test : test.skip
if (!program.ok) console.error(`grpc go-interop tests skipped: ${program.reason}`)

test.after.always(async () => (await etcd()).close())

async function go(...args: string[]) {
  const { endpoints } = await etcd()
  if (!program.ok) throw new Error(program.reason)
  return spawnLines(program.path, [args[0]!, endpoints[0]!, ...args.slice(1)])
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

goTest(
  'a Go client dialing etcd:///services/hello with etcd’s resolver reaches both Node servers',
  async (t) => {
    await using k = await kit()
    const [a, b] = await Promise.all([startHello('a'), startHello('b')])
    t.teardown(() => {
      a.server.forceShutdown()
      b.server.forceShutdown()
    })
    await registerGrpcServer(k, { server: a.server, service: 'hello', address: a.address })
    await registerGrpcServer(k, { server: b.server, service: 'hello', address: b.address })
    const client = await go('client', `etcd:///${k.namespace}services/hello`, '40', 'hello')
    t.is(await client.exited, 0, client.stderr)
    t.is(client.lines.length, 40)
    t.true(
      client.lines.every((l, i) => l === `a:go-${i}` || l === `b:go-${i}`),
      client.lines.join(', '),
    )
    t.true(a.calls > 0 && b.calls > 0, `both Node servers answered (a: ${a.calls}, b: ${b.calls})`)
  },
)

goTest(
  'a Go server registered with naming/endpoints is called by Node through etcdv3:///hello',
  async (t) => {
    await using k = await kit()
    const address = `127.0.0.1:${await freePort()}`
    const server = await go('server', `${k.namespace}services/hello`, address, 'go')
    await server.waitForLine((l) => l.startsWith('serving'))
    const resolver = resolverFor(k)
    const client = helloClient(`${resolver.service}:///hello`)
    t.teardown(() => client.close())
    t.is(await echo(client, 'from-node'), 'go:from-node')
    const view = k.discover('hello')
    await view.ready
    t.deepEqual(
      view.instances.map((i) => i.address),
      [address],
    )
    await server.endInput() // the Go server deletes its key, then stops
    t.true(server.lines.includes('stopped'))
    await eventually(() => view.instances.length === 0, 'the Go server gone from the registry')
  },
)

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { buildGoProgram, etcdGateway, spawnLines, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { type DialectName, EtcdKit, type InvalidEntry, silentLogger } from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

// Each Go framework's registry format, both ways, against Go code that writes and reads it the way the
// framework's own registry code does (packages/core/test/fixtures/go-dialects/main.go; the framework sources
// it follows are cited in docs/POLYGLOT.md): a Node service registered with `dialects` is seen by each
// framework's reader through join, leave, lease loss and an etcd restart; an instance a framework registered
// is discovered and called from Node.

const program = await buildGoProgram(fileURLToPath(new URL('fixtures/go-dialects/', import.meta.url)))
const goTest = program.ok ? test : test.skip
if (!program.ok) console.error(`dialect interop tests skipped: ${program.reason}`)

test.after.always(async () => (await etcd()).close())

type GoDialect = Exclude<DialectName, 'etcd'>
const GO_DIALECTS: readonly GoDialect[] = ['go-zero', 'kratos', 'kitex', 'hertz', 'go-micro']

interface GoState {
  instances?: unknown[]
  nodes?: Array<{ address: string; version: string; metadata: Record<string, string> }>
}

/** The `host:port`s a framework's reader would dial, from the state the Go reader printed. */
function addressesOf(dialect: GoDialect, state: GoState): string[] {
  switch (dialect) {
    case 'go-zero':
      return (state.instances as string[]).slice().sort()
    case 'kratos':
      return (state.instances as Array<{ endpoints: string[] }>)
        .flatMap((i) =>
          i.endpoints.filter((e) => e.startsWith('http://')).map((e) => e.slice('http://'.length)),
        )
        .sort()
    case 'kitex':
    case 'hertz':
      return (state.instances as Array<{ address: string }>).map((i) => i.address).sort()
    case 'go-micro':
      return (state.nodes ?? []).map((n) => n.address).sort()
  }
}

/** A Go reader of one dialect: the last instance set it printed. */
async function goReader(dialect: GoDialect, endpoints: string[], namespace: string, service: string) {
  if (!program.ok) throw new Error(program.reason)
  const p = spawnLines(program.path, ['watch', dialect, endpoints.join(','), namespace, service])
  let state: GoState | undefined
  let states = 0
  const parse = () => {
    for (; states < p.lines.length; states++) {
      const line = p.lines[states]!
      if (line.startsWith('state ')) state = JSON.parse(line.slice('state '.length)) as GoState
      // Kitex reports an empty service as an error, go-micro's first read of an empty one as not found
      else if (/^error (no instance remains|service not found)/.test(line))
        state = dialect === 'go-micro' ? { nodes: [] } : { instances: [] }
    }
    return state
  }
  await p.waitForLine((l) => l.startsWith('state ') || l.startsWith('error '))
  return {
    process: p,
    get state() {
      return parse()
    },
    addresses(): string[] {
      const s = parse()
      return s ? addressesOf(dialect, s) : []
    },
    async sees(addresses: string[], what: string, timeoutMs = 10_000) {
      const want = JSON.stringify([...addresses].sort())
      await eventually(
        () => JSON.stringify(this.addresses()) === want,
        `${dialect} reader: ${what}`,
        timeoutMs,
      )
    },
    /** Every address set it printed, in order (duplicates collapsed). */
    history(): string[][] {
      parse()
      const out: string[][] = []
      for (const line of p.lines) {
        let s: GoState | undefined
        if (line.startsWith('state ')) s = JSON.parse(line.slice('state '.length)) as GoState
        else if (/^error (no instance remains|service not found)/.test(line)) s = { instances: [], nodes: [] }
        if (!s) continue
        const a = addressesOf(dialect, s)
        if (JSON.stringify(a) !== JSON.stringify(out.at(-1))) out.push(a)
      }
      return out
    },
    close: () => p.endInput(),
  }
}

async function httpServer(body: string): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => res.end(`${body} ${req.url}`))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` }
}

for (const dialect of GO_DIALECTS) {
  goTest(
    `${dialect}: a Node service registered in this dialect is seen by the Go reader: join, leave`,
    async (t) => {
      await using k = await kit()
      const { endpoints } = await etcd()
      const reader = await goReader(dialect, endpoints, k.namespace, 'orders')
      t.teardown(() => reader.close())
      t.deepEqual(reader.addresses(), [])
      const reg = await k.register({
        service: 'orders',
        address: '127.0.0.1:7001',
        metadata: { version: '1.2.0', weight: 3, protocol: 'http' },
        dialects: ['etcd', dialect],
      })
      await reader.sees(['127.0.0.1:7001'], 'the Node instance')
      const state = reader.state!
      // what carries over, as the framework's reader decodes it
      if (dialect === 'kratos') {
        const [i] = state.instances as Array<{
          name: string
          version: string
          metadata: Record<string, string>
        }>
        t.is(i!.name, 'orders')
        t.is(i!.version, '1.2.0')
        t.is(i!.metadata.weight, '3', 'Kratos metadata values are strings')
      }
      if (dialect === 'kitex' || dialect === 'hertz')
        t.is((state.instances as Array<{ weight: number }>)[0]!.weight, 3)
      if (dialect === 'go-micro') {
        t.is(state.nodes![0]!.version, '1.2.0')
        // go-micro clients use a node only if they speak its protocol
        t.is(state.nodes![0]!.metadata.protocol, 'http')
      }
      // a second instance of another kit joins; then each leaves
      await using k2 = await kit({ namespace: k.namespace })
      const reg2 = await k2.register({ service: 'orders', address: '127.0.0.1:7002', dialects: [dialect] })
      await reader.sees(['127.0.0.1:7001', '127.0.0.1:7002'], 'both instances')
      await reg.deregister()
      await reader.sees(['127.0.0.1:7002'], 'the first one gone after deregister()')
      await reg2.deregister()
      await reader.sees([], 'none left')
    },
  )

  goTest(
    `${dialect}: the Node instance comes back for the Go reader after its lease is revoked`,
    async (t) => {
      await using k = await kit({ ttl: 3 })
      const { endpoints } = await etcd()
      const reader = await goReader(dialect, endpoints, k.namespace, 'orders')
      t.teardown(() => reader.close())
      await k.register({ service: 'orders', address: '127.0.0.1:7003', dialects: [dialect] })
      await reader.sees(['127.0.0.1:7003'], 'the Node instance')
      const lease = k.session.lease!.id
      await etcdGateway(endpoints[0]!).revoke(BigInt(lease))
      await eventually(() => (k.session.lease?.id ?? lease) !== lease, 'a new lease', 10_000)
      await reader.sees(['127.0.0.1:7003'], 'the instance written again on the new lease')
      // the reader saw it go with the revoked lease, then come back
      const history = reader.history()
      t.deepEqual(history.slice(0, 2), [[], ['127.0.0.1:7003']])
      t.true(
        history.slice(2).some((h) => h.length === 0),
        JSON.stringify(history),
      )
    },
  )

  goTest(
    `${dialect}: an instance the framework's registrar wrote is discovered and called from Node`,
    async (t) => {
      await using k = await kit()
      const { endpoints } = await etcd()
      const { server, address } = await httpServer(`hello from ${dialect}`)
      t.teardown(() => server.close())
      const view = k.discover('orders', { dialect })
      await view.ready
      const options = JSON.stringify({ version: 'go-1', weight: 2, metadata: { zone: 'b' } })
      const go = spawnLines(program.ok ? program.path : '', [
        'register',
        dialect,
        endpoints.join(','),
        k.namespace,
        'orders',
        address,
        options,
      ])
      await go.waitForLine((l) => l.startsWith('registered '))
      await eventually(() => view.instances.length === 1, 'the Go instance in the view')
      const [instance] = view.instances
      t.is(instance!.address, address)
      if (dialect === 'kitex' || dialect === 'hertz') t.is(instance!.weight, 2)
      if (dialect === 'kratos' || dialect === 'go-micro') t.is(instance!.metadata.version, 'go-1')
      const res = await k.service('orders', { dialect }).request('/hi')
      t.is(res.statusCode, 200)
      t.is(await res.body.text(), `hello from ${dialect} /hi`)
      await go.endInput()
      t.true(go.lines.includes('stopped'))
      await eventually(() => view.instances.length === 0, 'the Go instance gone after its graceful stop')
    },
  )

  goTest(
    `${dialect}: a value of another dialect under its prefix is reported once and skipped`,
    async (t) => {
      await using k = await kit()
      const { endpoints } = await etcd()
      const view = k.discover('orders', { dialect })
      const invalid: InvalidEntry[] = []
      view.on('invalid', (e) => invalid.push(e))
      await view.ready
      const foreign: Record<GoDialect, [string, string]> = {
        // go-zero's reader would take any value as an address: a Kratos JSON value is not one
        'go-zero': ['orders.rpc/1', '{"id":"x","name":"orders","endpoints":["http://10.0.0.1:80"]}'],
        kratos: ['/microservices/orders/x', '10.0.0.1:80'],
        kitex: ['kitex/registry-etcd/orders/10.0.0.1:80', '10.0.0.1:80'],
        hertz: ['hertz/registry-etcd/orders/10.0.0.1:80', '10.0.0.1:80'],
        'go-micro': ['/micro/registry/orders/x', '10.0.0.1:80'],
      }
      const [key, value] = foreign[dialect]
      const gw = etcdGateway(endpoints[0]!)
      const lease = await gw.grant(30)
      t.teardown(() => gw.revoke(lease).catch(() => {}))
      await (await etcd()).etcdctl(['put', `--lease=${lease.toString(16)}`, `${k.namespace}${key}`, value])
      await eventually(() => invalid.length === 1, 'the foreign value reported')
      t.is(invalid[0]!.key, key)
      // a good instance next to it is read; the foreign value is not reported again
      await k.register({ service: 'orders', address: '127.0.0.1:7004', dialects: [dialect] })
      await eventually(() => view.instances.length === 1, 'the good instance')
      t.is(view.instances[0]!.address, '127.0.0.1:7004')
      t.is(invalid.length, 1)
    },
  )
}

goTest('every dialect: a SIGKILLed Node process disappears for every Go reader within its TTL', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('dialect-kill')
  const readers = await Promise.all(GO_DIALECTS.map((d) => goReader(d, endpoints, namespace, 'orders')))
  t.teardown(() => Promise.all(readers.map((r) => r.close())))
  const child = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--conditions=etcdkit-source',
      fileURLToPath(new URL('fixtures/register-child.ts', import.meta.url)),
      endpoints.join(','),
      namespace,
      'orders',
      '127.0.0.1:7005',
      '2',
      GO_DIALECTS.join(','),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  await once(child.stdout!, 'data')
  await Promise.all(readers.map((r) => r.sees(['127.0.0.1:7005'], 'the child registered')))
  const killedAt = Date.now()
  child.kill('SIGKILL')
  await Promise.all(readers.map((r) => r.sees([], 'the child gone', 6_000)))
  const took = Date.now() - killedAt
  t.log(`gone for every reader ${took} ms after SIGKILL (ttl 2 s)`)
  t.true(took <= 4_000, `took ${took} ms`)
})

goTest(
  'every dialect: etcd restarted, the Go readers see the Node instance and a new one afterwards',
  async (t) => {
    await using cluster = await startEtcd()
    const namespace = uniquePrefix('dialect-restart')
    await using k = new EtcdKit({ endpoints: cluster.endpoints, namespace, ttl: 5, logger: silentLogger })
    const readers = await Promise.all(
      GO_DIALECTS.map((d) => goReader(d, cluster.endpoints, namespace, 'orders')),
    )
    t.teardown(() => Promise.all(readers.map((r) => r.close())))
    // one kit, two instances: go-zero's key is {Key}/{lease ID} unless an ID is given, so each gets an ID
    const dialects = (id: number) => GO_DIALECTS.map((d) => (d === 'go-zero' ? { name: d, id } : d))
    await k.register({ service: 'orders', address: '127.0.0.1:7006', dialects: dialects(7006) })
    await Promise.all(readers.map((r) => r.sees(['127.0.0.1:7006'], 'before the restart')))
    await cluster.stop()
    await cluster.restart()
    await k.register({ service: 'orders', address: '127.0.0.1:7007', dialects: dialects(7007) })
    await Promise.all(
      readers.map((r) => r.sees(['127.0.0.1:7006', '127.0.0.1:7007'], 'both after the restart', 15_000)),
    )
    t.is(readers.length, GO_DIALECTS.length)
  },
)

for (const dialect of ['kitex', 'hertz'] as const) {
  goTest(
    `${dialect}: an IPv6 instance (Kitex writes the host without brackets) is found and called`,
    async (t) => {
      await using k = await kit()
      const { endpoints } = await etcd()
      const server = createServer((req, res) => res.end(`v6 ${req.url}`))
      server.listen(0, '::1')
      await once(server, 'listening')
      t.teardown(() => server.close())
      const address = `[::1]:${(server.address() as AddressInfo).port}`
      const view = k.discover('orders', { dialect })
      await view.ready
      const go = spawnLines(program.ok ? program.path : '', [
        'register',
        dialect,
        endpoints.join(','),
        k.namespace,
        'orders',
        address,
      ])
      const line = await go.waitForLine((l) => l.startsWith('registered '))
      const port = address.slice(address.lastIndexOf(':') + 1)
      t.true(line.endsWith(dialect === 'kitex' ? `/orders/::1:${port}` : `/orders/[::1]:${port}`), line)
      await eventually(() => view.instances.length === 1, 'the Go instance in the view')
      t.is(view.instances[0]!.address, address)
      const res = await k.service('orders', { dialect }).request('/six')
      t.is(await res.body.text(), 'v6 /six')
      await go.endInput()
    },
  )
}

goTest(
  'every dialect at once: each Go reader sees exactly the one instance, and no reader errors',
  async (t) => {
    await using k = await kit()
    const { endpoints } = await etcd()
    const readers = await Promise.all(GO_DIALECTS.map((d) => goReader(d, endpoints, k.namespace, 'orders')))
    t.teardown(() => Promise.all(readers.map((r) => r.close())))
    // a service whose name starts with "orders" too: Kratos' reader reads "/microservices/orders" without a
    // trailing slash and must drop it by name
    await k.register({ service: 'orders-v2', address: '127.0.0.1:7009', dialects: [...GO_DIALECTS] })
    await k.register({ service: 'orders', address: '127.0.0.1:7008', dialects: ['etcd', ...GO_DIALECTS] })
    await Promise.all(readers.map((r) => r.sees(['127.0.0.1:7008'], 'the one instance')))
    for (const [i, r] of readers.entries()) {
      const errors = r.process.lines.filter(
        (l) => l.startsWith('error ') && !/no instance remains|not found/.test(l),
      )
      t.deepEqual(errors, [], `${GO_DIALECTS[i]} reader errors`)
      t.deepEqual(
        r.process.lines.filter((l) => l.startsWith('warn ')),
        [],
        `${GO_DIALECTS[i]} reader warnings`,
      )
    }
  },
)

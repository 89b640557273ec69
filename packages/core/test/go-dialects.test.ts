import { fileURLToPath } from 'node:url'
import { buildGoProgram, etcdGateway, spawnLines, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { etcd, eventually } from './helpers.js'

// The Go side of the dialect interop tests checks itself here: each registrar of
// fixtures/go-dialects/main.go keeps and drops its key as its framework does (what the dialect tests rely
// on when they say "as go-zero does"), and each reader sees its own registrar's instance.

const program = await buildGoProgram(fileURLToPath(new URL('fixtures/go-dialects/', import.meta.url)))
const goTest = program.ok ? test : test.skip
if (!program.ok) console.error(`go-dialects tests skipped: ${program.reason}`)

test.after.always(async () => (await etcd()).close())

type GoDialect = 'go-zero' | 'kratos' | 'kitex' | 'hertz' | 'go-micro'

async function go(args: string[]) {
  if (!program.ok) throw new Error(program.reason)
  const { endpoints } = await etcd()
  const [mode, dialect, ...rest] = args
  return spawnLines(program.path, [mode!, dialect!, endpoints.join(','), ...rest])
}

const registered = (l: string) => l.startsWith('registered ')
const keyOf = (line: string) => line.slice('registered '.length)

/** What each framework's registrar leaves behind on a graceful stop. */
const REVOKES: Record<GoDialect, boolean> = {
  'go-zero': true,
  kratos: false,
  kitex: false,
  hertz: false,
  'go-micro': false,
}

for (const dialect of Object.keys(REVOKES) as GoDialect[]) {
  goTest(
    `${dialect} registrar: key on a lease of its own; its reader sees it; a stop as the framework's`,
    async (t) => {
      const ns = uniquePrefix('go-dialects')
      const gw = etcdGateway((await etcd()).endpoints[0]!)
      const reader = await go(['watch', dialect, ns, 'orders'])
      await reader.waitForLine((l) => l.startsWith('state ') || l.startsWith('error '))
      const writer = await go(['register', dialect, ns, 'orders', '127.0.0.1:7100'])
      const key = keyOf(await writer.waitForLine(registered))
      const kv = await gw.get(`${ns}${key}`)
      t.truthy(kv, `${key} in etcd`)
      t.not(kv!.lease, 0n)
      await reader.waitForLine((l) => l.startsWith('state ') && l.includes('127.0.0.1:7100'))
      await writer.endInput()
      t.true(writer.lines.includes('stopped'))
      t.is(await gw.get(`${ns}${key}`), undefined, 'the key is gone at once')
      const { ttl } = await gw.timeToLive(kv!.lease)
      if (REVOKES[dialect]) t.is(ttl, -1, 'go-zero revokes its lease')
      else t.true(ttl > 0, 'the others leave the lease to expire')
      await gw.revoke(kv!.lease).catch(() => {})
      await reader.endInput()
    },
  )
}

goTest(
  'go-zero registrar: the key in decimal lease ID form; deleted by someone else, put again at once',
  async (t) => {
    const ns = uniquePrefix('go-dialects')
    const gw = etcdGateway((await etcd()).endpoints[0]!)
    const writer = await go(['register', 'go-zero', ns, 'orders', '127.0.0.1:7101'])
    const key = keyOf(await writer.waitForLine(registered))
    const kv = await gw.get(`${ns}${key}`)
    t.is(key, `orders.rpc/${kv!.lease.toString(10)}`)
    t.is(kv!.value, '127.0.0.1:7101')
    await (await etcd()).etcdctl(['del', `${ns}${key}`])
    await eventually(async () => (await gw.get(`${ns}${key}`)) !== undefined, 'the key put again')
    await writer.endInput()
  },
)

goTest('kitex registrar: a deleted key is put again on a new lease at its next observation', async (t) => {
  const ns = uniquePrefix('go-dialects')
  const gw = etcdGateway((await etcd()).endpoints[0]!)
  const writer = await go(['register', 'kitex', ns, 'orders', '127.0.0.1:7102', '{"observeMs":300}'])
  const key = keyOf(await writer.waitForLine(registered))
  const before = (await gw.get(`${ns}${key}`))!.lease
  await (await etcd()).etcdctl(['del', `${ns}${key}`])
  await eventually(async () => (await gw.get(`${ns}${key}`)) !== undefined, 'the key put again', 5_000)
  t.not((await gw.get(`${ns}${key}`))!.lease, before)
  await writer.endInput()
  await gw.revoke(before).catch(() => {})
})

// Hertz's keepRegister (hertz-contrib/registry etcd/registry.go @ 8a220332, lines 209-239) cancels the
// context of its Get inside a goroutine and then Puts with that context: every attempt fails with
// "context canceled", and after five it gives up. Seen running Hertz's own code: a deleted key never came back.
goTest(
  "hertz registrar: a deleted key stays deleted, as Hertz's own registrar (it retries with a cancelled context)",
  async (t) => {
    const ns = uniquePrefix('go-dialects')
    const gw = etcdGateway((await etcd()).endpoints[0]!)
    const writer = await go([
      'register',
      'hertz',
      ns,
      'orders',
      '127.0.0.1:7104',
      '{"observeMs":300,"retryMs":300}',
    ])
    t.teardown(() => writer.endInput())
    const key = keyOf(await writer.waitForLine(registered))
    const before = (await gw.get(`${ns}${key}`))!.lease
    await (await etcd()).etcdctl(['del', `${ns}${key}`])
    await writer.waitForLine((l) => l === `error keep register service ${key} failed times:5`, 10_000)
    t.is(
      writer.lines.filter((l) => l === `warn keep register put ${key} failed with err: context canceled`)
        .length,
      5,
    )
    t.is(await gw.get(`${ns}${key}`), undefined, 'the key is not put again')
    t.is(writer.lines.filter(registered).length, 1)
    await writer.endInput()
    t.true(writer.lines.includes('stopped'))
    await gw.revoke(before).catch(() => {})
  },
)

goTest(
  'go-micro registrar: a lost lease is noticed at the next interval and the key written again',
  async (t) => {
    const ns = uniquePrefix('go-dialects')
    const gw = etcdGateway((await etcd()).endpoints[0]!)
    const writer = await go(['register', 'go-micro', ns, 'orders', '127.0.0.1:7103', '{"intervalMs":300}'])
    const key = keyOf(await writer.waitForLine(registered))
    t.is(key, '/micro/registry/orders/orders-go-127.0.0.1-7103')
    const before = (await gw.get(`${ns}${key}`))!
    t.deepEqual(JSON.parse(before.value), {
      name: 'orders',
      version: 'latest',
      metadata: null,
      endpoints: null,
      nodes: [{ metadata: { protocol: 'http' }, id: 'orders-go-127.0.0.1-7103', address: '127.0.0.1:7103' }],
    })
    await gw.revoke(before.lease)
    await writer.waitForLine((l) => l === `lost ${before.lease}`, 5_000)
    await eventually(async () => (await gw.get(`${ns}${key}`)) !== undefined, 'the key written again', 5_000)
    await writer.endInput()
  },
)

import { fileURLToPath } from 'node:url'
import { buildGoProgram, spawnLines } from '@etcdkit/testing'
import test from 'ava'
import { etcd, eventually, kit } from './helpers.js'

// etcd's own Go client (3.4, as Debian packages it) on one side, etcdkit on the other: one registry, one
// lock queue, one election. The Go side is packages/core/test/fixtures/go-interop/main.go.

const program = await buildGoProgram(fileURLToPath(new URL('fixtures/go-interop/', import.meta.url)))
// Without Go and etcd's Go client sources these tests are reported as skipped, with the reason; the test
// command installs both where it can (as root, with apt-get), and CI always has them.
const goTest = program.ok ? test : test.skip
if (!program.ok) console.error(`go-interop tests skipped: ${program.reason}`)

test.after.always(async () => (await etcd()).close())

async function go(...args: string[]) {
  const { endpoints } = await etcd()
  if (!program.ok) throw new Error(program.reason)
  return spawnLines(program.path, [args[0]!, endpoints[0]!, ...args.slice(1)])
}

const settledSoon = (p: Promise<unknown>, ms = 300) =>
  Promise.race([p.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))])

goTest(
  'a Go service registered with naming/endpoints is discovered, metadata and all; its deletion removes it',
  async (t) => {
    await using k = await kit()
    const view = k.discover('hello')
    await view.ready
    const g = await go(
      'register',
      `${k.namespace}services/hello`,
      '10.1.0.1:50051',
      '{"version":"go-1","weight":3}',
    )
    await g.waitForLine((l) => l.startsWith('registered'))
    await eventually(() => view.instances.length === 1, 'the Go endpoint in the view')
    const [instance] = view.instances
    t.is(instance!.address, '10.1.0.1:50051')
    t.is(instance!.key, 'services/hello/10.1.0.1:50051')
    t.deepEqual(instance!.metadata, { version: 'go-1', weight: 3 })
    t.is(instance!.weight, 3)
    await g.endInput()
    t.true(g.lines.includes('deleted'))
    await eventually(() => view.instances.length === 0, 'the Go endpoint gone')
  },
)

goTest("Go's endpoints.Manager lists etcdkit's registrations with their metadata", async (t) => {
  await using k = await kit()
  await k.register({
    service: 'hello',
    address: '10.1.0.2:50051',
    metadata: { version: 'node-1', zone: 'a' },
  })
  const g = await go('list', `${k.namespace}services/hello`)
  await g.exited
  t.deepEqual(JSON.parse(g.lines[0]!), {
    [`${k.namespace}services/hello/10.1.0.2:50051`]: {
      Addr: '10.1.0.2:50051',
      Metadata: { version: 'node-1', zone: 'a' },
    },
  })
})

goTest('a Go concurrency.Mutex and an etcdkit lock exclude each other and queue in order', async (t) => {
  await using k = await kit()
  const name = '/jobs/shared'
  const g = await go('lock', `${k.namespace}${name}`)
  const goLine = await g.waitForLine((l) => l.startsWith('locked'))
  const goRevision = BigInt(goLine.split(' ')[2]!)
  // Go holds it: etcdkit waits
  const acquiring = k.lock(name).acquire()
  t.false(await settledSoon(acquiring), 'etcdkit must wait while Go holds the lock')
  await g.endInput() // Go unlocks
  const held = await acquiring
  t.true(held.fencingToken > goRevision)
  // etcdkit holds it: Go waits
  const g2 = await go('lock', `${k.namespace}${name}`)
  t.false(await settledSoon(g2.waitForLine((l) => l.startsWith('locked'), 2_000).catch(() => false)))
  t.false(g2.lines.some((l) => l.startsWith('locked')))
  await held.release()
  const line = await g2.waitForLine((l) => l.startsWith('locked'))
  t.regex(line, new RegExp(`^locked ${k.namespace}${name}/[0-9a-f]+ \\d+$`))
  await g2.endInput()
})

goTest('a Go concurrency.Election and an etcdkit election see one leader', async (t) => {
  await using k = await kit()
  const name = '/leader/shared'
  const g = await go('elect', `${k.namespace}${name}`, 'go-candidate')
  await g.waitForLine((l) => l.startsWith('leader'))
  const election = k.election(name)
  t.is((await election.leader())?.value, 'go-candidate')
  const campaign = election.campaign('node-candidate')
  t.false(await settledSoon(campaign), 'etcdkit must wait while Go leads')
  await g.endInput() // Go resigns
  const leadership = await campaign
  t.true(election.isLeader)
  const check = await go('leader', `${k.namespace}${name}`)
  await check.exited
  t.deepEqual(check.lines, ['node-candidate'])
  await leadership.resign()
})

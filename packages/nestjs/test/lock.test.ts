import type { INestApplication } from '@nestjs/common'
import anyTest from 'ava'
import { intervals, ReportJob, skipped } from './fixtures/limits.js'
import { createApp, etcd, etcdOptions } from './helpers.js'

const test = anyTest.serial // Nest apps are heavy: one test at a time
test.after.always(async () => (await etcd()).close())

const open: INestApplication[] = []
test.afterEach.always(async () => {
  await Promise.all(open.splice(0).map((app) => app.close().catch(() => {})))
})

async function twoApps() {
  const options = await etcdOptions('nest-lock')
  return Promise.all(
    (['express', 'fastify'] as const).map(async (adapter) => {
      const app = await createApp({ adapter, etcd: options, providers: [ReportJob] })
      open.push(app)
      await app.init()
      return app.get(ReportJob)
    }),
  )
}

test('concurrent @WithLock calls across two Nest apps (Express and Fastify) never overlap', async (t) => {
  intervals.length = 0
  const [a, b] = await twoApps()
  const calls: Promise<string>[] = []
  for (let i = 0; i < 4; i++) calls.push(a!.run(`a${i}`, 40), b!.run(`b${i}`, 40))
  const results = await Promise.all(calls)
  t.deepEqual([...results].sort(), ['a0', 'a1', 'a2', 'a3', 'b0', 'b1', 'b2', 'b3'])
  t.is(intervals.length, 8)
  const sorted = [...intervals].sort((x, y) => x.enter - y.enter)
  for (let i = 1; i < sorted.length; i++)
    t.true(
      sorted[i]!.enter >= sorted[i - 1]!.exit,
      `${sorted[i]!.who} entered before ${sorted[i - 1]!.who} left`,
    )
})

test('wait: false skips (onBusy) while the other app holds the lock, and runs once it is free', async (t) => {
  intervals.length = 0
  skipped.length = 0
  const [a, b] = await twoApps()
  const holding = a!.run('holder', 600)
  // the holder's key is written before run() awaits the pause: wait until it holds by trying from b
  const started = Date.now()
  let result: string | undefined
  while (skipped.length === 0 && Date.now() - started < 10_000) {
    result = await b!.tryRun('skipper', 10)
    if (result === 'skipper') intervals.length = 0 // b got it before a did: not the case under test
  }
  t.deepEqual(skipped.slice(0, 1), ['skipper'], 'the busy call went to onBusy')
  await holding
  t.is(await b!.tryRun('after', 10), 'after', 'free again: it runs')
})

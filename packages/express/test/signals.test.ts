// signals: true in a real process: a request that never ends must not keep the process alive.
import { fileURLToPath } from 'node:url'
import { sharedEtcd, spawnLines, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { Agent, request } from 'undici'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

async function hangApp(env: Record<string, string>) {
  const { endpoints } = await etcd()
  const child = spawnLines(
    process.execPath,
    [
      '--import=tsx',
      '--conditions=etcdkit-source',
      fileURLToPath(new URL('fixtures/hang-app.ts', import.meta.url)),
    ],
    { ETCD_ENDPOINTS: endpoints.join(','), ETCDKIT_NAMESPACE: uniquePrefix('express-hang'), ...env },
  )
  const line = await child.waitForLine((l) => l.startsWith('listening '), 45_000)
  const port = Number(line.split(' ')[1])
  const agent = new Agent()
  // a request that never ends: its headers arrive, its body never does
  const res = await request(`http://127.0.0.1:${port}/hang`, { dispatcher: agent })
  const body = res.body.text().catch((err: unknown) => err)
  return { child, body, agent }
}

test('SIGTERM with a request that never ends: the process exits once closeTimeout has passed', async (t) => {
  t.timeout(90_000)
  const { child, body, agent } = await hangApp({ DRAIN_DELAY: '200', CLOSE_TIMEOUT: '1500' })
  t.teardown(() => child.child.kill('SIGKILL'))
  t.teardown(() => agent.close())
  const started = Date.now()
  child.child.kill('SIGTERM')
  const outcome = await Promise.race([
    child.exited.then(() => 'exited'),
    new Promise((r) => setTimeout(() => r('still running 8 s after SIGTERM'), 8_000)),
  ])
  const took = Date.now() - started
  t.is(outcome, 'exited', child.stderr)
  t.true(took >= 1_400, `exited after ${took} ms: before closeTimeout`)
  t.is(child.child.signalCode, 'SIGTERM', 'it ends as SIGTERM would have ended it')
  t.true((await body) instanceof Error, 'the hung response was cut')
})

test('a second signal while draining forces the exit at once', async (t) => {
  t.timeout(90_000)
  // the default closeTimeout (drainDelay + 5 s) is far off: only the second signal can end it sooner
  const { child, agent } = await hangApp({ DRAIN_DELAY: '200' })
  t.teardown(() => child.child.kill('SIGKILL'))
  t.teardown(() => agent.close())
  child.child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 700))
  const started = Date.now()
  child.child.kill('SIGINT')
  const outcome = await Promise.race([
    child.exited.then(() => 'exited'),
    new Promise((r) => setTimeout(() => r('still running 3 s after the second signal'), 3_000)),
  ])
  t.is(outcome, 'exited', child.stderr)
  t.log(`exited ${Date.now() - started} ms after the second signal`)
  t.true(child.child.signalCode === 'SIGINT' || child.child.exitCode !== 0)
})

test('with the default closeTimeout, SIGTERM with a hung request still ends the process', async (t) => {
  t.timeout(90_000)
  const { child, agent } = await hangApp({ DRAIN_DELAY: '0' })
  t.teardown(() => child.child.kill('SIGKILL'))
  t.teardown(() => agent.close())
  const started = Date.now()
  child.child.kill('SIGTERM')
  const outcome = await Promise.race([
    child.exited.then(() => 'exited'),
    new Promise((r) => setTimeout(() => r('still running 15 s after SIGTERM'), 15_000)),
  ])
  t.is(outcome, 'exited', child.stderr)
  const took = Date.now() - started
  t.log(`exited ${took} ms after SIGTERM`)
  t.true(took < 8_000, `${took} ms: the default is drainDelay + 5 s`)
})

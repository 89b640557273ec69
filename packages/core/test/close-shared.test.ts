// A second close() of the registry or of the locks while the first is still under way shares the first:
// it resolves only once the deletions (releases) are done, never before.
import test from 'ava'
import { LockHub } from '../src/coordination/lock.js'
import { QueueHub } from '../src/coordination/queue.js'
import { silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
import { Registry } from '../src/registry/registry.js'
import { kit } from './helpers.js'

test('registry: a second close() resolves with the first, after the deletions', async (t) => {
  await using k = await kit()
  const { keyspace, watchHub } = kitInternals(k)
  const registry = new Registry(keyspace, k.session, watchHub, silentLogger, 'services/', k.endpoints, 5_000)
  await registry.register({ service: 'shared-close', address: '127.0.0.1:4000' })
  let firstDone = false
  const first = registry.close().then(() => {
    firstDone = true
  })
  await registry.close()
  t.true(firstDone, 'the second close() resolved before the first had deleted the key')
  await first
  t.is((await keyspace.list('services/shared-close/')).kvs.length, 0)
})

test('locks: a second close() resolves with the first, after the releases', async (t) => {
  await using k = await kit()
  const { keyspace, watchHub } = kitInternals(k)
  const queues = new QueueHub(keyspace, watchHub, silentLogger)
  const locks = new LockHub(keyspace, k.session, queues, silentLogger, k.endpoints, 5_000)
  await locks.acquire('shared-close', undefined)
  let firstDone = false
  const first = locks.close().then(() => {
    firstDone = true
  })
  await locks.close()
  t.true(firstDone, 'the second close() resolved before the first had released the lock')
  await first
  t.is((await keyspace.list('shared-close/')).kvs.length, 0)
  queues.close()
})

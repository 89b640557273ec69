// A prefix another team filled past grpc-js's 4 MiB receive limit: reads are paged at one revision.
import { uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { etcd, eventually, within } from './helpers.js'

const MB = 1_200_000

test('more than 4 MiB under config/ and services/big/: config.value().ready and discover().ready resolve with everything', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('big')
  await using writer = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const pad = 'x'.repeat(MB)
  for (let i = 0; i < 4; i++) {
    await writer.config.set(`other-team/blob-${i}`, pad)
    await writer.client
      .put(`${namespace}services/big/127.0.0.1:${1000 + i}`)
      .value(JSON.stringify({ Op: 0, Addr: `127.0.0.1:${1000 + i}`, Metadata: { pad } }))
  }
  await writer.config.set('limit', '7')
  await using kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const limit = kit.config.value('limit', { parse: Number, default: 1 })
  await within(limit.ready, 20_000, 'config.value().ready')
  t.is(limit.current, 7)
  const view = kit.discover('big')
  await within(view.ready, 20_000, 'discover().ready')
  t.is(view.instances.length, 4)
  // and it keeps following after the paged read
  await writer.config.set('limit', '8')
  await eventually(() => limit.current === 8, 'the change after the paged read', 5_000)
})

test('pages are pinned at the first page’s revision: a write between two pages is not half-seen', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('pages')
  await using kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  for (let i = 0; i < 5; i++) await kit.config.set(`k${i}`, String(i))
  kit.keyspace.pageKeys = 2
  const kv = kit.keyspace.kv
  const range = kv.range.bind(kv)
  let pages = 0
  kv.range = async (req, options) => {
    const res = await range(req, options)
    // after the first page: a write that a read at a newer revision would see
    if (++pages === 1) await kit.config.set('k3', 'changed')
    return res
  }
  const { kvs, revision } = await kit.keyspace.list('config/')
  kv.range = range
  t.is(pages, 3)
  t.deepEqual(
    kvs.map((x) => `${x.key.toString().slice(namespace.length)}=${x.value.toString()}`),
    ['config/k0=0', 'config/k1=1', 'config/k2=2', 'config/k3=3', 'config/k4=4'],
  )
  for (const x of kvs) t.true(BigInt(x.mod_revision) <= revision)
})

test('a value too large for one etcd call is a coded error', async (t) => {
  await using kit = new EtcdKit({
    endpoints: (await etcd()).endpoints,
    namespace: uniquePrefix('large'),
    logger: silentLogger,
  })
  const err = await t.throwsAsync(kit.config.set('huge', 'x'.repeat(2_000_000)), {
    code: 'ETCDKIT_TOO_LARGE',
  })
  t.regex(err?.message ?? '', /huge/)
  await t.throwsAsync(kit.election('e').campaign('x'.repeat(2_000_000)), { code: 'ETCDKIT_TOO_LARGE' })
})

test('views of 500 services opened at once read with at most 16 calls in flight, and all get ready', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('many')
  await using writer = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const services = Array.from({ length: 500 }, (_, i) => `svc-${i}`)
  for (let i = 0; i < services.length; i += 100)
    await writer.client.kv.txn({
      compare: [],
      success: services.slice(i, i + 100).map((s) => ({
        request_put: {
          key: Buffer.from(`${namespace}services/${s}/127.0.0.1:1000`),
          value: Buffer.from(JSON.stringify({ Op: 0, Addr: '127.0.0.1:1000' })),
        },
      })),
      failure: [],
    })
  await using kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  // count the reads in flight at the kit's KV client (etcd still answers every one of them)
  const kv = kit.keyspace.kv
  const range = kv.range.bind(kv)
  let inFlight = 0
  let most = 0
  kv.range = (req, options) => {
    most = Math.max(most, ++inFlight)
    return range(req, options).finally(() => inFlight--)
  }
  const views = services.map((s) => kit.discover(s))
  await within(Promise.all(views.map((v) => v.ready)), 30_000, 'every view ready')
  t.true(
    views.every((v) => v.instances.length === 1),
    'every view lists its instance',
  )
  t.true(most <= 16, `at most 16 reads in flight (saw ${most})`)
})

// A prefix another team filled past grpc-js's 4 MiB receive limit: reads are paged at one revision.
import { startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { kitInternals } from '../src/kit.js'
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
  kitInternals(kit).keyspace.pageKeys = 2
  const kv = kitInternals(kit).keyspace.kv
  const range = kv.range.bind(kv)
  let pages = 0
  kv.range = async (req, options) => {
    const res = await range(req, options)
    // after the first page: a write that a read at a newer revision would see
    if (++pages === 1) await kit.config.set('k3', 'changed')
    return res
  }
  const { kvs, revision } = await kitInternals(kit).keyspace.list('config/')
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

/** One instance (127.0.0.1:1000) of each service, written `perTxn` at a time (raw puts, no lease). */
async function registerOnePerService(writer: EtcdKit, services: readonly string[], perTxn: number) {
  for (let i = 0; i < services.length; i += perTxn)
    await kitInternals(writer).keyspace.kv.txn({
      compare: [],
      success: services.slice(i, i + perTxn).map((s) => ({
        request_put: {
          key: kitInternals(writer).keyspace.key(`services/${s}/127.0.0.1:1000`),
          value: Buffer.from(JSON.stringify({ Op: 0, Addr: '127.0.0.1:1000' })),
        },
      })),
      failure: [],
    })
}

test('views of 500 services opened at once read with at most 16 calls in flight, batched, and all get ready', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('many')
  await using writer = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const services = Array.from({ length: 500 }, (_, i) => `svc-${i}`)
  await registerOnePerService(writer, services, 100)
  await using kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  // count the reads in flight at the kit's KV client (etcd still answers every one of them)
  const kv = kitInternals(kit).keyspace.kv
  const range = kv.range.bind(kv)
  const txn = kv.txn.bind(kv)
  let inFlight = 0
  let most = 0
  let calls = 0
  const counted = <T>(call: () => Promise<T>) => {
    calls++
    most = Math.max(most, ++inFlight)
    return call().finally(() => inFlight--)
  }
  kv.range = (req, options) => counted(() => range(req, options))
  kv.txn = (req, options) => counted(() => txn(req, options))
  const views = services.map((s) => kit.discover(s))
  await within(Promise.all(views.map((v) => v.ready)), 30_000, 'every view ready')
  t.true(
    views.every((v) => v.instances.length === 1),
    'every view lists its instance',
  )
  t.true(most <= 16, `at most 16 reads in flight (saw ${most})`)
  // 16 sent alone, the 484 queued behind them in txns of at most 64 prefixes
  t.true(calls <= 16 + Math.ceil(484 / 64) + 16, `reads queued together go as one call (saw ${calls} calls)`)
})

test('batched reads: a prefix past one page is read on at the batch’s revision, and a batch too large for one answer is split', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('batch')
  await using writer = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const put = (service: string, port: number, pad = '') =>
    writer.client
      .put(`${namespace}services/${service}/127.0.0.1:${port}`)
      .value(JSON.stringify({ Op: 0, Addr: `127.0.0.1:${port}`, Metadata: { pad } }))
  const services = Array.from({ length: 60 }, (_, i) => `svc-${i}`)
  for (const [i, s] of services.entries()) {
    // every fifth service has 5 instances (past a page of 2); svc-0, svc-20 and svc-40 carry 2.4 MB each
    const count = i % 5 === 0 ? 5 : 1
    const pad = i % 20 === 0 ? 'x'.repeat(MB) : ''
    for (let p = 0; p < count; p++) await put(s, 1000 + p, p < 2 ? pad : '')
  }
  await using kit = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  kitInternals(kit).keyspace.pageKeys = 2
  const kv = kitInternals(kit).keyspace.kv
  const range = kv.range.bind(kv)
  const txn = kv.txn.bind(kv)
  let txns = 0
  let followUps = 0
  kv.txn = (req, options) => {
    txns++
    return txn(req, options)
  }
  kv.range = async (req, options) => {
    const res = await range(req, options)
    // svc-25's second page (its first came in a batch): a write that a read at a newer revision would see
    if (req.revision !== undefined && String(req.key).includes('/svc-25/') && ++followUps === 1)
      await put('svc-25', 1999)
    return res
  }
  // the first 16 views read alone, the other 44 queue behind them and go together
  const views = services.map((s) => kit.discover(s))
  const first = await within(
    Promise.all(views.map((v) => v.ready.then(() => v.instances.length))),
    30_000,
    'every view ready',
  )
  kv.range = range
  kv.txn = txn
  t.true(followUps > 0, 'svc-25, read in a batch, was read past its first page')
  // 44 prefixes with 2.4 MB under svc-20 and svc-40: over 4 MiB in one answer, so split in two
  t.true(txns >= 3, `the batch too large for one answer was split (saw ${txns} txns)`)
  // each view's first answer is one snapshot: the write between pages is not in svc-25's
  t.deepEqual(
    first,
    services.map((_, i) => (i % 5 === 0 ? 5 : 1)),
  )
  // and the view then follows it
  await eventually(() => views[25]!.instances.length === 6, 'the write after the read', 5_000)
})

test('an etcd whose --max-txn-ops is below the batch: reads go in smaller batches, and every view gets ready', async (t) => {
  await using own = await startEtcd({ flags: ['--max-txn-ops=8'] })
  const namespace = uniquePrefix('txn-ops')
  await using writer = new EtcdKit({ endpoints: own.endpoints, namespace, logger: silentLogger })
  const services = Array.from({ length: 200 }, (_, i) => `svc-${i}`)
  await registerOnePerService(writer, services, 8)
  await using kit = new EtcdKit({ endpoints: own.endpoints, namespace, logger: silentLogger })
  const kv = kitInternals(kit).keyspace.kv
  const txn = kv.txn.bind(kv)
  let refused = 0
  kv.txn = (req, options) =>
    txn(req, options).catch((err: unknown) => {
      refused++
      throw err
    })
  const open = async (names: string[]) => {
    const views = names.map((s) => kit.discover(s))
    await within(Promise.all(views.map((v) => v.ready)), 30_000, 'every view ready')
    t.true(views.every((v) => v.instances.length === 1))
  }
  // 100 views at once: batches over 8 are refused and split
  await open(services.slice(0, 100))
  t.true(refused > 0, 'etcd refused the batches over its limit')
  // from then on, batches of at most 8: nothing refused
  const before = refused
  await open(services.slice(100))
  t.is(refused, before)
})

test('views opened together while etcd is down: the batched reads fail, are retried, and every view gets ready once etcd is back', async (t) => {
  await using own = await startEtcd()
  const namespace = uniquePrefix('down')
  const services = Array.from({ length: 100 }, (_, i) => `svc-${i}`)
  {
    await using writer = new EtcdKit({ endpoints: own.endpoints, namespace, logger: silentLogger })
    await registerOnePerService(writer, services, 100)
  }
  await own.stop()
  await using kit = new EtcdKit({
    endpoints: own.endpoints,
    namespace,
    logger: silentLogger,
    callTimeout: 1_000,
  })
  const kv = kitInternals(kit).keyspace.kv
  const txn = kv.txn.bind(kv)
  let failedTxns = 0
  kv.txn = (req, options) =>
    txn(req, options).catch((err: unknown) => {
      failedTxns++
      throw err
    })
  const views = services.map((s) => kit.discover(s))
  await eventually(() => failedTxns > 0, 'a batched read failed while etcd was down', 15_000)
  t.true(views.every((v) => !v.loaded))
  await own.restart()
  await within(Promise.all(views.map((v) => v.ready)), 30_000, 'every view ready after etcd came back')
  t.true(views.every((v) => v.instances.length === 1))
})

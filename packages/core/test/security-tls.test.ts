// etcd serving clients over TLS (a CA made for the test): the kit works through it, given the CA as a file
// path or PEM text, and without it fails with a coded error, not a hang.
import { rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type EtcdCluster, startEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { eventually } from './helpers.js'

let etcd: EtcdCluster
test.before(async () => {
  etcd = await startEtcd({ tls: true })
})
test.after.always(async () => {
  await etcd?.close()
})

test('server TLS: registration, discovery, locks and config work with the CA given as a path or as PEM', async (t) => {
  for (const ca of [etcd.tls!.caFile, etcd.tls!.ca]) {
    const namespace = uniquePrefix('tls')
    await using kit = new EtcdKit({ endpoints: etcd.endpoints, tls: { ca }, namespace, logger: silentLogger })
    await kit.register({ service: 'orders', address: '127.0.0.1:8' })
    const view = kit.discover('orders')
    await view.ready
    t.is(view.instances.length, 1)
    const held = await kit.lock('jobs').acquire()
    await held.release()
    await kit.config.set('k', 'v')
    const value = kit.config.value('k')
    await value.ready
    t.is(value.current, 'v')
    await etcd.etcdctl(['put', `${namespace}config/k`, 'w'])
    await eventually(() => value.current === 'w', 'the change over TLS')
  }
})

test('server TLS with https:// endpoints works too', async (t) => {
  await using kit = new EtcdKit({
    endpoints: etcd.endpoints.map((e) => `https://${e}`),
    tls: { ca: etcd.tls!.ca },
    namespace: uniquePrefix('https'),
    logger: silentLogger,
  })
  await kit.config.set('a', 'b')
  t.is(await kit.config.get('a'), 'b')
})

test('a TLS etcd reached without TLS: a coded error within the call timeout', async (t) => {
  await using kit = new EtcdKit({ endpoints: etcd.endpoints, callTimeout: 1_000, logger: silentLogger })
  const err = await t.throwsAsync(kit.config.get('a'))
  t.truthy((err as { code?: string })?.code?.startsWith('ETCDKIT_'), err?.message)
})

test('tls.ca as node:tls takes it (an array of PEM texts or paths) works; a path to a non-PEM file is refused at construction (issue 30, finding 6)', async (t) => {
  for (const ca of [[etcd.tls!.ca], [etcd.tls!.caFile], [Buffer.from(etcd.tls!.ca), etcd.tls!.caFile]]) {
    await using kit = new EtcdKit({
      endpoints: etcd.endpoints,
      tls: { ca },
      namespace: uniquePrefix('tls'),
      callTimeout: 4_000,
      logger: silentLogger,
    })
    await kit.config.set('a', 'b')
    t.is(await kit.config.get('a'), 'b')
  }
  const notPem = join(tmpdir(), `etcdkit-not-pem-${process.pid}.txt`)
  writeFileSync(notPem, 'hello')
  t.teardown(() => rmSync(notPem, { force: true }))
  for (const ca of [notPem, '/no/such/ca.pem', [etcd.tls!.ca, '/no/such/ca.pem'], 'ca.pem'])
    t.throws(() => new EtcdKit({ endpoints: etcd.endpoints, tls: { ca }, logger: silentLogger }), {
      code: 'ETCDKIT_INVALID_ARGUMENT',
      message: /tls\.ca/,
    })
})

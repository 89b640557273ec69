import { uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import {
  advertisedAddress,
  formatAddress,
  hostAddress,
  ServerRegistration,
} from '../src/integration/index.js'
import { etcd, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

const v4 = (address: string, port = 3000) => ({ address, family: 'IPv4', port })
const v6 = (address: string, port = 3000) => ({ address, family: 'IPv6', port })

test('advertised address: bound address, unspecified hosts, IPv6 brackets, advertise wins', (t) => {
  t.is(advertisedAddress(v4('127.0.0.1')), '127.0.0.1:3000')
  t.is(advertisedAddress(v6('::1')), '[::1]:3000')
  t.is(advertisedAddress(v6('fd00::7', 80)), '[fd00::7]:80')
  const host = hostAddress(false)
  t.is(advertisedAddress(v4('0.0.0.0')), `${host ?? '127.0.0.1'}:3000`)
  t.is(advertisedAddress(v6('::')), formatAddress(hostAddress(true) ?? '::1', 3000))
  t.is(advertisedAddress(v4('0.0.0.0'), 'orders-1.internal'), 'orders-1.internal:3000')
  t.is(advertisedAddress(v4('0.0.0.0'), '10.1.2.3:8080'), '10.1.2.3:8080')
  t.is(advertisedAddress(v4('0.0.0.0'), '[fd00::1]'), '[fd00::1]:3000')
  t.is(advertisedAddress(v4('0.0.0.0'), 'fd00::1'), '[fd00::1]:3000')
  t.is(advertisedAddress(v4('0.0.0.0'), '[fd00::1]:9'), '[fd00::1]:9')
  t.is(advertisedAddress('/tmp/app.sock', 'app.internal:80'), 'app.internal:80')
  t.throws(() => advertisedAddress('/tmp/app.sock'), { message: /the pipe "\/tmp\/app.sock".*set advertise/ })
  t.throws(() => advertisedAddress('/tmp/app.sock', 'app.internal'), { code: 'ETCDKIT_INVALID_ARGUMENT' })
  for (const bad of ['a:b:c', 'host:0', 'host:70000', '[::1', 'bad host', ''])
    t.throws(() => advertisedAddress(v4('127.0.0.1'), bad), { message: /invalid advertise/ })
})

test('options are checked up front, naming the bad value', async (t) => {
  const ctx = { integration: 'it' }
  const closed = await kit()
  await closed.close()
  const cases: [unknown, RegExp][] = [
    [undefined, /it: invalid options undefined/],
    [{}, /invalid it service name undefined/],
    [{ service: 'a b' }, /invalid it service name "a b"/],
    [{ service: 's', drainDelay: Number.NaN }, /invalid it drainDelay NaN/],
    [{ service: 's', registerTimeout: 0 }, /invalid it registerTimeout 0/],
    [{ service: 's', registerInBackground: 'yes' }, /invalid registerInBackground "yes"/],
    [{ service: 's', etcd: {}, kit: closed }, /either etcd .* or kit, not both/],
    [{ service: 's', kit: closed }, /the kit given is already closed/],
    [{ service: 's', etcd: 'x' }, /invalid etcd "x"/],
    [{ service: 's', etcd: { ttl: 1 } }, /invalid ttl 1/],
    [{ service: 's', metadata: { tags: 'a' } }, /it: invalid metadata.tags "a"/],
    [{ service: 's', advertise: 7 }, /invalid advertise 7/],
    [{ service: 's', closeKit: 1 }, /invalid closeKit 1/],
    [{ service: 's', servcie: 's' }, /unknown option "servcie"/],
  ]
  for (const [options, message] of cases)
    t.throws(() => new ServerRegistration(options as never, ctx), {
      code: 'ETCDKIT_INVALID_ARGUMENT',
      message,
    })
})

test('close(): deregister, drainDelay, then the server, then the kit it owns; a given kit stays open', async (t) => {
  const { endpoints, etcdctl } = await etcd()
  const namespace = uniquePrefix('lifecycle')
  const steps: string[] = []
  const reg = new ServerRegistration(
    { service: 'orders', etcd: { endpoints, namespace, logger: silentLogger }, drainDelay: 200 },
    { integration: 'test' },
  )
  t.true(reg.ownsKit)
  await reg.register(v4('0.0.0.0', 4000))
  const key = `${namespace}services/orders/${hostAddress(false) ?? '127.0.0.1'}:4000`
  t.is((await etcdctl(['get', '--keys-only', '--prefix', `${namespace}services/`])).trim(), key)
  const started = Date.now()
  await reg.close(async () => {
    steps.push(`server closed after ${Date.now() - started >= 190 ? 'the drain delay' : 'too short a wait'}`)
    steps.push(
      `key ${(await etcdctl(['get', '--prefix', `${namespace}services/`])) === '' ? 'gone' : 'still there'}`,
    )
    steps.push(`kit ${reg.kit.closed ? 'closed' : 'open'}`)
  })
  t.deepEqual(steps, ['server closed after the drain delay', 'key gone', 'kit open'])
  t.true(reg.kit.closed)

  await using mine = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const withKit = new ServerRegistration(
    { service: 'orders', kit: mine, drainDelay: 0 },
    { integration: 'test' },
  )
  t.false(withKit.ownsKit)
  await withKit.register(v4('127.0.0.1', 4001))
  await withKit.close()
  t.false(mine.closed)
  t.is(await etcdctl(['get', '--prefix', `${namespace}services/`]), '')
})

test('close() while the registration waits for etcd gives up on it and writes nothing', async (t) => {
  const reg = new ServerRegistration(
    { service: 'orders', etcd: { endpoints: ['127.0.0.1:1'], logger: silentLogger }, drainDelay: 0 },
    { integration: 'test' },
  )
  const registering = reg.register(v4('127.0.0.1', 4002))
  await reg.close()
  await t.throwsAsync(registering, { message: /the server is closing/ })
  t.is(reg.registration, undefined)
})

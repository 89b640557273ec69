// Log lines name what an operator finds in etcd (issue 30, finding 10): whole keys with the namespace, and
// with one endpoint no "another member" to move to.
import { startProxy, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, type Logger } from '../src/index.js'
import { etcd, eventually } from './helpers.js'

function recorder() {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = []
  const at = (level: string) => (obj: unknown, msg?: string) =>
    void lines.push({ level, msg: msg ?? '', fields: (obj ?? {}) as Record<string, unknown> })
  const logger: Logger = { debug: () => {}, info: at('info'), warn: at('warn'), error: at('error') }
  return { logger, lines }
}

test('warnings name keys and prefixes with the namespace; one endpoint: the watch stream is reopened, not moved', async (t) => {
  const { endpoints } = await etcd()
  const proxy = await startProxy(endpoints[0]!)
  t.teardown(() => proxy.close())
  const namespace = uniquePrefix('n11')
  const { logger, lines } = recorder()
  await using kit = new EtcdKit({ endpoints: [proxy.endpoint], namespace, logger })
  const reg = await kit.register({ service: 'x', address: '10.0.0.1:80' })
  const view = kit.discover('x')
  await view.ready
  // a registration deleted by someone else is put back; the warning names the key as etcd holds it
  await kit.client.delete().key(`${namespace}services/x/10.0.0.1:80`)
  await eventually(() => lines.some((l) => /deleted by someone else/.test(l.msg)), 'the warning')
  const deleted = lines.find((l) => /deleted by someone else/.test(l.msg))!
  t.is(deleted.fields.key, `${namespace}services/x/10.0.0.1:80`)
  // an unreadable registry value: the warning names the whole key
  await kit.client.put(`${namespace}services/x/bad`).value('not an address')
  await eventually(() => lines.some((l) => /cannot be read/.test(l.msg)), 'the invalid value reported')
  t.is(lines.find((l) => /cannot be read/.test(l.msg))!.fields.key, `${namespace}services/x/bad`)
  // a silent watch stream with one endpoint: reopened (there is no other member)
  proxy.blackhole()
  await eventually(() => lines.some((l) => /watch stream not answering/.test(l.msg)), 'the watchdog', 15_000)
  const silent = lines.find((l) => /watch stream not answering/.test(l.msg))!
  t.notRegex(silent.msg, /another member/)
  proxy.pass()
  await eventually(() => !view.stale, 'current again', 15_000)
  await reg.deregister()
})

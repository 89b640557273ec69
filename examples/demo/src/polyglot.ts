// The demo's polyglot step: one Node service registered in three Go frameworks' registry formats at once,
// and what each framework's reader makes of it; then a service a Go framework registered, called from Node.
// The Go side is the program the interop tests use (packages/core/test/fixtures/go-dialects), built with
// etcd's Go client; without Go on the machine this step says so and is skipped.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { EtcdKit } from '@etcdkit/core'
import { buildGoProgram, spawnLines } from '@etcdkit/testing'

interface PolyglotDemo {
  kit: EtcdKit
  endpoints: string[]
  namespace: string
  etcdctl(args: readonly string[]): Promise<string>
  log(msg: string): void
}

const READERS = [
  ['go-zero', 'core/discov Subscriber'],
  ['kratos', 'contrib/registry/etcd GetService'],
  ['kitex', 'registry-etcd Resolve'],
] as const

export async function polyglotDemo({ kit, endpoints, namespace, etcdctl, log }: PolyglotDemo): Promise<void> {
  const source = fileURLToPath(new URL('../../../packages/core/test/fixtures/go-dialects/', import.meta.url))
  log('building the Go readers (etcd Go client; the first build takes a minute) ...')
  const program = await buildGoProgram(source)
  if (!program.ok) {
    log(`polyglot step skipped: ${program.reason}`)
    return
  }
  const server = createServer((req, res) => res.end(`payments here (${req.url})`))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`
  const reg = await kit.register({
    service: 'payments',
    address,
    metadata: { version: '2.0.0', weight: 2, zone: 'eu-1' },
    dialects: ['etcd', 'go-zero', 'kratos', 'kitex'],
  })
  log(`payments registered once, in 4 dialects (one txn, one lease): ${address}`)
  const dump = await etcdctl(['get', '--prefix', namespace])
  for (const [key, value] of pairs(dump)) {
    if (!/payments/.test(key)) continue
    console.log(`            ${key.slice(namespace.length)}`)
    console.log(`              ${value}`)
  }
  for (const [dialect, reader] of READERS) {
    const p = spawnLines(program.path, ['watch', dialect, endpoints.join(','), namespace, 'payments'])
    const line = await p.waitForLine((l) => l.startsWith('state ') && l.includes(address))
    log(`a ${dialect} reader (${reader}) sees: ${line.slice('state '.length)}`)
    await p.endInput()
  }

  // the other way: a Kratos service registers itself; Node finds it and calls it
  const go = spawnLines(program.path, [
    'register',
    'kratos',
    endpoints.join(','),
    namespace,
    'payments-go',
    address,
    JSON.stringify({ id: 'payments-go-1', version: 'v1.0.0' }),
  ])
  await go.waitForLine((l) => l.startsWith('registered '))
  const client = kit.service('payments-go', { dialect: 'kratos' })
  await client.ready
  const res = await client.request('/charge')
  log(
    `a Kratos-registered service found with kit.service('payments-go', { dialect: 'kratos' }): ${await res.body.text()}`,
  )
  await go.endInput()
  await reg.deregister()
  server.close()
}

/** etcdctl's `get` output: key and value lines, alternating. */
function pairs(text: string): Array<[string, string]> {
  const lines = text.trimEnd().split('\n')
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < lines.length; i += 2) out.push([lines[i]!, lines[i + 1]!])
  return out
}

// However the plugin is registered (awaited, not, in a child scope, through after(), ready() first,
// callback-style listen), listen() resolves only once the key is in etcd: on Fastify 5 and on Fastify 4.
import { createServer } from 'node:net'
import { defaultLogger, type Logger, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import Fastify5 from 'fastify'
import Fastify4 from 'fastify4'
import { etcdDiscovery } from '../src/index.js'

const etcd = sharedEtcd
test.after.always(async () => (await etcd()).close())

/** The few members of a Fastify app these tests use, common to Fastify 4 and 5. */
interface App {
  register(plugin: unknown, opts?: unknown): PromiseLike<unknown> & { after(fn: () => void): unknown }
  ready(): PromiseLike<unknown>
  listen(opts: { port: number; host: string }): Promise<string>
  listen(opts: { port: number; host: string }, cb: (err: Error | null, address: string) => void): void
  close(): PromiseLike<unknown>
  server: { address(): unknown; listening: boolean }
  etcd: { closed: boolean; logger: Logger }
}

const versions: [string, (opts?: object) => App][] = [
  ['fastify 5', (opts) => Fastify5(opts) as unknown as App],
  ['fastify 4', (opts) => Fastify4(opts) as unknown as App],
]

const portOf = (app: App) => (app.server.address() as { port: number }).port

async function options() {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('fastify-styles')
  return {
    namespace,
    opts: { service: 'orders', etcd: { endpoints, namespace, logger: silentLogger }, drainDelay: 0 },
  }
}

/** The registration keys in etcd right now, read with etcdctl. */
async function keys(namespace: string): Promise<string> {
  return (await (await etcd()).etcdctl(['get', '--prefix', '--keys-only', `${namespace}services/`])).trim()
}

type Style = (app: App, opts: object) => Promise<void>

const styles: [string, Style][] = [
  [
    'awaited',
    async (app, opts) => {
      await app.register(etcdDiscovery, opts)
      await app.listen({ port: 0, host: '127.0.0.1' })
    },
  ],
  [
    'not awaited',
    async (app, opts) => {
      app.register(etcdDiscovery, opts)
      await app.listen({ port: 0, host: '127.0.0.1' })
    },
  ],
  [
    'with after()',
    async (app, opts) => {
      app.register(etcdDiscovery, opts).after(() => {})
      await app.listen({ port: 0, host: '127.0.0.1' })
    },
  ],
  [
    'in a child scope, not awaited',
    async (app, opts) => {
      app.register(async (child: App) => {
        child.register(etcdDiscovery, opts)
      })
      await app.listen({ port: 0, host: '127.0.0.1' })
    },
  ],
  [
    'then ready() then listen()',
    async (app, opts) => {
      app.register(etcdDiscovery, opts)
      await app.ready()
      await app.listen({ port: 0, host: '127.0.0.1' })
    },
  ],
  [
    'with a callback-style listen',
    async (app, opts) => {
      app.register(etcdDiscovery, opts)
      await new Promise<void>((resolve, reject) =>
        app.listen({ port: 0, host: '127.0.0.1' }, (err) => (err ? reject(err) : resolve())),
      )
    },
  ],
]

for (const [version, Fastify] of versions) {
  for (const [style, start] of styles) {
    test(`${version}, ${style}: the key is in etcd when listen() resolves, and gone after close()`, async (t) => {
      const { namespace, opts } = await options()
      const app = Fastify()
      await start(app, opts)
      t.is(await keys(namespace), `${namespace}services/orders/127.0.0.1:${portOf(app)}`)
      await app.close()
      t.is(await keys(namespace), '')
      // registered in a child scope, the decorator is the child's
      if (app.etcd) t.true(app.etcd.closed)
    })
  }

  test(`${version}, not awaited, etcd unreachable: listen() rejects and the server and kit are closed`, async (t) => {
    const port = await closedPort()
    const app = Fastify()
    app.register(etcdDiscovery, {
      service: 'orders',
      etcd: { endpoints: [`127.0.0.1:${port}`], logger: silentLogger },
      registerTimeout: 300,
    })
    const err = await t.throwsAsync(app.listen({ port: 0, host: '127.0.0.1' }))
    t.is((err as { code?: string }).code, 'ETCDKIT_ETCD_UNAVAILABLE')
    t.false(app.server.listening)
    t.true(app.etcd.closed)
  })

  test(`${version}: with Fastify's logger off, the kit logs through etcdkit's default logger`, async (t) => {
    const { endpoints } = await etcd()
    const app = Fastify()
    await app.register(etcdDiscovery, { service: 'orders', etcd: { endpoints } })
    t.is(app.etcd.logger, defaultLogger, 'warnings must not vanish into a no-op logger')
    await app.close()
  })

  test(`${version}: with Fastify's logger on, the kit's warnings go to it`, async (t) => {
    const { endpoints } = await etcd()
    const lines: string[] = []
    const stream = { write: (line: string) => lines.push(line) }
    const app = Fastify({ logger: { level: 'info', stream } })
    await app.register(etcdDiscovery, { service: 'orders', etcd: { endpoints } })
    app.etcd.logger.warn({ key: 'k' }, 'a warning')
    const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'a warning')
    t.like(line, { level: 40, name: '@etcdkit/fastify', key: 'k' })
    await app.close()
  })
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

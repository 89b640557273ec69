// The web console: one page and a small JSON API on Fastify, kept live with server-sent events from the
// kit's watches. Loopback and read-only unless asked; a non-loopback bind needs --host and a token.
import { EtcdCallError, type EtcdKit, EtcdKitError } from '@etcdkit/core'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { type AuditEntry, registerActions } from './actions.js'
import { operator, transportFailure, unreachable, within } from './connect.js'
import { UsageError } from './errors.js'
import { registerFlagRoutes } from './flags-console.js'
import { checkBind, createGuard, isLoopbackAddress } from './guard.js'
import { LiveState, type LiveStateOptions, type Snapshot } from './live.js'
import { page } from './page.js'

export interface ConsoleOptions {
  port: number
  host: string
  /** `--host` was given: only then may the console bind beyond loopback. */
  hostGiven: boolean
  /** Config edits allowed (`--write`). */
  write: boolean
  /** Required on every request when set (`?token=` or `Authorization: Bearer`); required off loopback. */
  token: string | undefined
  /**
   * Who the operator is, recorded with every write (`etcdkit-console:{user}`): the CLI passes the etcd
   * auth user (`--user`). @default the OS user
   */
  user?: string
  /** Told of every write made through the console (the CLI prints each one). */
  audit?: (entry: AuditEntry) => void
  /** How the live state refreshes (lease TTL rounds). */
  live?: LiveStateOptions
  /**
   * How long start-up waits for etcd's first answers (registry, config, queues) before it gives up.
   * @default 10000
   */
  startTimeout?: number
}

export interface RunningConsole {
  /** The URL to open (with the token, when one is set). */
  url: string
  close(): Promise<void>
}

export async function startConsole(kit: EtcdKit, options: ConsoleOptions): Promise<RunningConsole> {
  const { host, token, write } = options
  checkBind(host, options.hostGiven, token)
  const user = options.user ?? operator()
  const writer = `etcdkit-console:${user}`
  const audit = (entry: Omit<AuditEntry, 'at' | 'writer'>) =>
    options.audit?.({ at: new Date().toISOString(), writer, ...entry })
  const live = new LiveState(kit, options.live)
  const ms = options.startTimeout ?? 10_000
  try {
    await within(kit, ms, 'starting the console', live.ready())
  } catch (err) {
    live.close()
    if (err instanceof EtcdKitError) throw err
    const why = transportFailure(err, ms)
    throw why === undefined
      ? new EtcdCallError(`starting the console: ${(err as Error)?.message ?? String(err)}`, err)
      : unreachable(kit, why, 'starting the console', err)
  }
  const app = Fastify({ logger: false })
  // first, before any route: every request of every route passes the guard
  const guard = createGuard({ host, token })
  guard.install(app)
  const clients = new Set<FastifyReply>()
  const event = (reply: FastifyReply, name: string, data: unknown) =>
    reply.raw.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
  // a page that reads slower than snapshots come (10,000 instances are megabytes each) gets the latest one
  // once its socket drains, not every one in between: the server's memory stays bounded per page
  const behind = new Map<FastifyReply, Snapshot>()
  const send = (reply: FastifyReply, s: Snapshot) => {
    if (reply.raw.writableNeedDrain) {
      if (!behind.has(reply))
        reply.raw.once('drain', () => behind.has(reply) && send(reply, behind.get(reply)!))
      behind.set(reply, s)
      return
    }
    behind.delete(reply)
    reply.raw.write(`event: snapshot\ndata: ${serialized(s)}\n\n`)
  }
  // serialized once per snapshot, however many pages watch
  const texts = new WeakMap<Snapshot, string>()
  const serialized = (s: Snapshot) => {
    const known = texts.get(s)
    if (known !== undefined) return known
    const text = JSON.stringify(s)
    texts.set(s, text)
    return text
  }
  live.on('snapshot', (s) => {
    for (const reply of clients) send(reply, s)
  })
  live.on('ttl', (u) => {
    for (const reply of clients) event(reply, 'ttl', u)
  })
  live.on('freshness', (f) => {
    for (const reply of clients) event(reply, 'freshness', f)
  })
  // a page tells a dropped stream from a quiet one by these (a proxy may also close an idle stream)
  const ping = setInterval(() => {
    for (const reply of clients) event(reply, 'ping', new Date().toISOString())
  }, 5_000)
  ping.unref()
  live.on('error', (err) => {
    for (const reply of clients) reply.raw.write(`event: failure\ndata: ${JSON.stringify(err.message)}\n\n`)
  })

  app.get('/', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send(page({ write, csrf: guard.csrf, user })),
  )
  app.get('/api/snapshot', async () => live.last)
  app.get('/api/events', (req, reply) => {
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    })
    clients.add(reply)
    if (live.last) send(reply, live.last)
    if (live.lastTtl) event(reply, 'ttl', live.lastTtl)
    event(reply, 'freshness', live.freshness)
    req.raw.on('close', () => {
      clients.delete(reply)
      behind.delete(reply)
    })
  })

  const guardWrite = async (_req: FastifyRequest, reply: FastifyReply) => {
    if (!write) return reply.code(403).send({ error: 'read-only console: start it with --write to edit' })
  }
  const scopedKey = (key: string, scope: { service: string } | undefined) =>
    scope ? `${scope.service}/${key}` : key
  const body = (req: FastifyRequest) => {
    const b = req.body as { key?: unknown; value?: unknown; service?: unknown } | undefined
    if (!b || typeof b.key !== 'string')
      throw Object.assign(new Error('expected { key, value?, service? }'), { statusCode: 400 })
    if (b.service !== undefined && typeof b.service !== 'string')
      throw Object.assign(new Error('service must be a string'), { statusCode: 400 })
    return { key: b.key, value: b.value, scope: b.service ? { service: b.service } : undefined }
  }
  app.put('/api/config', { preHandler: guardWrite }, async (req) => {
    const { key, value, scope } = body(req)
    if (typeof value !== 'string')
      throw Object.assign(new Error('value must be a string'), { statusCode: 400 })
    await kit.config.set(key, value, { ...scope, writer })
    audit({ action: 'config.set', key: scopedKey(key, scope), detail: `${value.length} characters` })
    return { ok: true }
  })
  app.delete('/api/config', { preHandler: guardWrite }, async (req) => {
    const { key, scope } = body(req)
    const existed = await kit.config.delete(key, scope)
    if (existed) audit({ action: 'config.delete', key: scopedKey(key, scope) })
    return { ok: true, existed }
  })
  app.get('/api/config/history', async (req) => {
    const q = req.query as { key?: unknown; service?: unknown }
    if (typeof q.key !== 'string') throw Object.assign(new Error('expected ?key='), { statusCode: 400 })
    return kit.config.history(q.key, typeof q.service === 'string' && q.service ? { service: q.service } : {})
  })
  app.post('/api/config/rollback', { preHandler: guardWrite }, async (req) => {
    const { key, scope } = body(req)
    const { revision, expect } = req.body as { revision?: unknown; expect?: unknown }
    if (typeof revision !== 'string' || (expect !== undefined && typeof expect !== 'string'))
      throw Object.assign(new Error('expected { key, revision, expect? } (revisions as strings)'), {
        statusCode: 400,
      })
    const done = await kit.config.rollback(key, revision, {
      ...scope,
      writer,
      ...(expect === undefined ? {} : { expect }),
    })
    audit({ action: 'config.rollback', key: scopedKey(key, scope), detail: `to revision ${revision}` })
    return done
  })
  registerActions(app, { kit, writer, audit, guard: guardWrite })
  registerFlagRoutes(app, { kit, writer, audit, guard: guardWrite })
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status =
      err.statusCode ??
      (err.code === 'ETCDKIT_INVALID_ARGUMENT'
        ? 400
        : err.code === 'ETCDKIT_CONFIG_CONFLICT'
          ? 409
          : // a definition flagd's schema refuses (a flag rolled back to one)
            err.code === 'ETCDKIT_INVALID_CONFIG_VALUE' || err.code === 'ETCDKIT_CONFIG_REVISION_UNAVAILABLE'
            ? 422
            : 502)
    return reply.code(status).send({ error: err.message, code: err.code })
  })

  try {
    await app.listen({ port: options.port, host })
  } catch (err) {
    clearInterval(ping)
    live.close()
    throw err
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  // `localhost` is whatever the resolver says: the address actually bound decides, as --host did
  if (!token && typeof address === 'object' && address && !isLoopbackAddress(address.address)) {
    clearInterval(ping)
    live.close()
    await app.close()
    throw new UsageError(`${host} bound ${address.address}, which is not loopback: give a --token`)
  }
  const shown = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${shown}:${port}/${token ? `?token=${encodeURIComponent(token)}` : ''}`,
    async close() {
      clearInterval(ping)
      for (const reply of clients) reply.raw.end()
      clients.clear()
      live.close()
      await app.close()
    },
  }
}

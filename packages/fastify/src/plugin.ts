import { type EtcdKit, InvalidArgumentError } from '@etcdkit/core'
import {
  ConnectionDrain,
  callerDeadline,
  ServerRegistration,
  type ServerRegistrationOptions,
  setDefaultKit,
} from '@etcdkit/core/integration'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { holdListening } from './listen-gate.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The etcdkit kit of this app (created by `@etcdkit/fastify`, or the one passed as `kit`). */
    etcd: EtcdKit
  }
  interface FastifyRequest {
    /**
     * Aborts when the caller gives up: set when the request carries the `etcdkit-timeout-ms` header that
     * etcdkit's service client sends with a `deadline` (else `undefined`). Pass it on to slow work.
     */
    callerDeadline: AbortSignal | undefined
  }
}

/**
 * `service` and `etcd` (options for a kit the plugin creates and closes) or `kit` (yours, left open), plus
 * `metadata`, `advertise`, `drainDelay`, `closeTimeout`, `registerTimeout`, `registerInBackground`: see
 * `ServerRegistrationOptions` in @etcdkit/core/integration.
 */
export interface EtcdDiscoveryOptions extends ServerRegistrationOptions {}

const NAME = '@etcdkit/fastify'
const FASTIFY_REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])
const kInstalled = Symbol.for('@etcdkit/fastify.installed')

type Root = FastifyInstance & { [kInstalled]?: boolean }

/** The instance `Fastify()` returned: plugin scopes are prototype children of it, and only it closes. */
function rootOf(instance: FastifyInstance): Root {
  let obj: object = instance
  while (!Object.hasOwn(obj, 'listen')) {
    const proto = Object.getPrototypeOf(obj) as object | null
    if (proto === null) return instance
    obj = proto
  }
  return obj as Root
}

/** Whether this Fastify has the `preClose` hook (4.16 and later). */
function hasPreClose(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  return major > 4 || (major === 4 && minor >= 16)
}

const plugin: FastifyPluginAsync<EtcdDiscoveryOptions> = async (fastify, options) => {
  const root = rootOf(fastify)
  if (fastify.hasDecorator('etcd') || root[kInstalled]) {
    throw new InvalidArgumentError(
      `${NAME} is already registered on this server: register it once (one service per server)`,
    )
  }
  // Fastify passes its own register options (prefix, logLevel, ...) along with ours
  const ours = Object.fromEntries(
    Object.entries(options).filter(([key]) => !FASTIFY_REGISTER_OPTIONS.has(key)),
  ) as unknown as EtcdDiscoveryOptions
  // Fastify's logger when it logs; with logging off (Fastify's default) the kit's own, so that warnings
  // such as a lost lease still reach the operator (ServerRegistration skips a logger that drops all)
  const lifecycle = new ServerRegistration(ours, {
    integration: NAME,
    logger: fastify.log.child({ name: NAME }),
  })
  root[kInstalled] = true
  fastify.decorate('etcd', lifecycle.kit)
  // code with no kit at hand (@etcdkit/decorators) uses this one while it is open
  setDefaultKit(lifecycle.kit)
  // the caller's deadline (etcdkit-timeout-ms): a signal for the handler; with no time left, nobody waits
  // for the answer, so the work is shed at once (504)
  fastify.decorateRequest('callerDeadline', undefined)
  fastify.addHook('onRequest', (request, reply, done) => {
    const signal = callerDeadline(request.headers)
    if (signal === undefined) return done()
    if (signal.aborted) {
      void reply.code(504).send({ error: 'the caller had no time left (etcdkit-timeout-ms: 0)' })
      return
    }
    request.callerDeadline = signal
    done()
  })
  const route = lifecycle.healthRoute
  if (route !== undefined)
    fastify.get(route, async (_req, reply) => {
      const { status, body } = lifecycle.healthResponse()
      return reply.code(status).type('application/json; charset=utf-8').send(body)
    })

  // Fastify resolves listen() before it runs onListen hooks, and only logs their errors; holding back the
  // server's 'listening' event is what makes listen() mean "registered" and a failed registration a
  // failed listen, even when this plugin loads during a listen() already running (registered without
  // await). See listen-gate.ts.
  const server = root.server
  holdListening(
    server,
    () => lifecycle.register(server.address()),
    async (err) => {
      lifecycle.kit.logger.error({ err }, 'could not register in etcd: closing the server')
      server.close()
      await (root.close as () => Promise<undefined>).call(root)
    },
  )

  // Fastify answers 503 to every request from the moment close() starts, before preClose hooks run:
  // deregistering and waiting drainDelay there would turn the drain window into failed requests. So the
  // deregistration comes first, while the server still serves normally; preClose is the fallback.
  const close = root.close as () => Promise<undefined>
  // Fastify's close would also wait for sockets kept alive after requests in flight at close.
  // A request that never ends would hold it for ever: past closeTimeout its connection is destroyed.
  const drain = new ConnectionDrain(root.server, (inFlight) =>
    lifecycle.kit.logger.warn(
      { inFlight, closeTimeout: lifecycle.closeTimeout },
      'requests still in flight when the close timed out: their connections were destroyed',
    ),
  )
  const closeAfterDeregistering = async (): Promise<undefined> => {
    await lifecycle.deregister()
    drain.begin(lifecycle.closeTimeRemaining())
    return close.call(root)
  }
  root.close = function etcdClose(cb?: (err?: Error) => void) {
    if (typeof cb !== 'function') return closeAfterDeregistering()
    closeAfterDeregistering().then(
      () => cb(),
      (err: Error) => cb(err),
    )
    return undefined
  } as FastifyInstance['close']

  // a fallback for a close that bypasses the wrapper above; Fastify < 4.16 has no preClose hook (adding
  // one fails the boot) and relies on the wrapper alone
  if (hasPreClose(fastify.version))
    fastify.addHook('preClose', async () => {
      await lifecycle.deregister()
      drain.begin(lifecycle.closeTimeRemaining())
    })
  fastify.addHook('onClose', async () => {
    drain.dispose()
    await lifecycle.closeKit()
  })
}

/**
 * Registers the app in etcd as `service` when it listens (`await fastify.listen()` resolves once the key
 * is written) and, on `fastify.close()`, deregisters it, waits `drainDelay`, lets Fastify drain, then
 * closes the kit if the plugin created it. `fastify.etcd` is the kit.
 */
export const etcdDiscovery = fp(plugin, { fastify: '4.x || 5.x', name: NAME })

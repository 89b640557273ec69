// The app's registration in etcd (on listen) and the order of shutdown: deregister, wait, drain, close.
import type { EtcdKit } from '@etcdkit/core'
import { ConnectionDrain, type DrainableServer, ServerRegistration } from '@etcdkit/core/integration'
import type { BeforeApplicationShutdown, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common'
import type { HttpAdapterHost } from '@nestjs/core'
import { type EtcdKitModuleOptions, NAME } from './options.js'

type ListenCallback = (...args: unknown[]) => void
type Listen = (...args: unknown[]) => unknown

const kWrapped = Symbol.for('@etcdkit/nestjs.listen')

/**
 * Registers the app when its HTTP server listens, whichever adapter (Express, Fastify): the adapter's
 * `listen` is wrapped so Nest's `app.listen()` resolves only once the key is written (and rejects when
 * it cannot be). On shutdown (`app.close()`, or a signal with `enableShutdownHooks()`), Nest runs
 * `beforeApplicationShutdown` before it closes the HTTP server: the registration is deleted there, then
 * `drainDelay` passes while the server still serves, so clients stop picking this instance before it
 * stops accepting; then the adapter closes (kept-alive connections are drained) and the kit closes. This
 * module's shutdown hooks run after every other module's (hook-order.ts): other modules can still release
 * a lock or write a value in their own `onApplicationShutdown`.
 */
export class EtcdKitLifecycle
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  /** The registration lifecycle, when the module was given `register`. */
  readonly registration: ServerRegistration | undefined
  #drain: ConnectionDrain | undefined
  #draining = false

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly kit: EtcdKit,
    options: EtcdKitModuleOptions,
  ) {
    this.registration = options.register
      ? new ServerRegistration({ ...options.register, kit, closeKit: false }, { integration: NAME })
      : undefined
  }

  /** Whether shutdown has begun deregistering the app (it should get no new traffic). */
  get draining(): boolean {
    return this.#draining
  }

  onApplicationBootstrap() {
    const registration = this.registration
    if (!registration) return
    const adapter = this.adapterHost.httpAdapter as unknown as
      | (Record<PropertyKey, unknown> & { listen: Listen; close(): unknown; getHttpServer(): unknown })
      | undefined
    if (!adapter) {
      this.kit.logger.warn(
        { service: registration.service },
        `${NAME}: register was given but the app has no HTTP server (NestFactory.createApplicationContext): nothing is registered`,
      )
      return
    }
    if (adapter[kWrapped]) return
    adapter[kWrapped] = true
    const server = adapter.getHttpServer() as DrainableServer
    // a request that never ends would hold app.close() (and a signal's exit) for ever: closeTimeout bounds it
    this.#drain = new ConnectionDrain(server, (inFlight) =>
      this.kit.logger.warn(
        { inFlight, closeTimeout: registration.closeTimeout },
        'requests still in flight when the close timed out: their connections were destroyed',
      ),
    )
    const listen = adapter.listen
    // Nest calls adapter.listen(port, ...args, callback) and resolves app.listen() from the callback
    // (rejecting when its first argument is an Error): the callback runs once the key is written.
    adapter.listen = function listenAndRegister(this: unknown, ...args: unknown[]) {
      const last = args.at(-1)
      if (typeof last !== 'function') return listen.apply(this, args)
      const callback = last as ListenCallback
      return listen.apply(this, [
        ...args.slice(0, -1),
        (...result: unknown[]) => {
          if (result[0] instanceof Error) return callback(...result)
          registration.register(server.address()).then(
            () => callback(...result),
            async (err: unknown) => {
              // not registered: the app does not serve either, as with a failed listen
              await Promise.resolve(adapter.close()).catch(() => {})
              callback(err instanceof Error ? err : new Error(String(err)))
            },
          )
        },
      ])
    }
  }

  async beforeApplicationShutdown() {
    if (!this.registration) return
    this.#draining = true
    await this.registration.deregister() // includes drainDelay
    this.#drain?.begin(this.registration.closeTimeRemaining())
  }

  async onApplicationShutdown() {
    this.#drain?.dispose()
    await this.kit.close()
  }
}

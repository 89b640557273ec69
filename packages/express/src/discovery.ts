import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http'
import { type EtcdKit, InvalidArgumentError } from '@etcdkit/core'
import {
  ConnectionDrain,
  callerDeadline,
  checkMs,
  type DrainableServer,
  ServerRegistration,
  type ServerRegistrationOptions,
  setDefaultKit,
} from '@etcdkit/core/integration'

declare global {
  namespace Express {
    interface Request {
      /** The etcdkit kit, put there by `discovery.middleware` from @etcdkit/express. */
      etcd: EtcdKit
      /**
       * Aborts when the caller gives up: set by `discovery.middleware` when the request carries the
       * `etcdkit-timeout-ms` header that etcdkit's service client sends with a `deadline`.
       */
      callerDeadline?: AbortSignal
    }
  }
}

const NAME = '@etcdkit/express'

export interface EtcdDiscoveryOptions extends ServerRegistrationOptions {
  /**
   * Close gracefully on the first of these signals, then re-raise the signal if nothing else listens for
   * it, so the process ends as it would have. A second signal while closing destroys every connection
   * and re-raises at once (the process ends without waiting for the drain). `true` means
   * `["SIGTERM", "SIGINT"]`. @default false
   */
  signals?: boolean | NodeJS.Signals[]
  /**
   * @deprecated use `closeTimeout` (which counts from the start of the close, `drainDelay` included).
   * How long the server's close lets requests in flight finish, in ms, counted after `drainDelay`; past
   * that, their connections are destroyed. Given, it replaces `closeTimeout`; giving both is an error.
   */
  closeGrace?: number
}

type AnyServer = DrainableServer

export interface EtcdDiscovery extends AsyncDisposable {
  /** The kit (created from `etcd`, or the one passed as `kit`). */
  readonly kit: EtcdKit
  /** The server this discovery is attached to, once `listen()` or `attach()` was called. */
  readonly server: AnyServer | undefined
  /** The advertised `host:port`, once listening. */
  readonly address: string | undefined
  /**
   * Creates an `http.Server` for `app` (an Express app or any request listener), listens, and resolves
   * with it once the registration is written. A listen error (port in use) rejects with that error and
   * writes nothing; a registration failure closes the server and rejects with `ETCDKIT_ETCD_UNAVAILABLE`.
   */
  listen(app: RequestListener, port?: number, host?: string): Promise<ReturnType<typeof createServer>>
  /**
   * Registers a server you created: at once when it already listens, else on its `listening` event.
   * Resolves with the server once registered; rejects with its listen error, or the registration error.
   */
  attach<S extends AnyServer>(server: S): Promise<S>
  /**
   * Deregisters, waits `drainDelay`, closes the server letting in-flight requests finish (idle keep-alive
   * connections are closed so they do not hold it open) until `closeTimeout` has passed since the close
   * began, when the connections still open are destroyed; then closes the kit if it was created here.
   * Idempotent.
   */
  close(): Promise<void>
  /**
   * Express middleware (or any `(req, res, next)` stack) that sets `req.etcd` to the kit, and answers
   * `GET healthRoute` (when that option is set) with the kit's health: 200 when ready, else 503. A request
   * with an `etcdkit-timeout-ms` header gets `req.callerDeadline` (a signal that aborts when its caller
   * gives up); one sent with no time left (`0`) is answered 504 at once.
   */
  readonly middleware: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void
}

function parseSignals(value: unknown): NodeJS.Signals[] {
  if (value === undefined || value === false) return []
  if (value === true) return ['SIGTERM', 'SIGINT']
  if (Array.isArray(value) && value.every((s) => typeof s === 'string' && /^SIG[A-Z0-9]+$/.test(s)))
    return value as NodeJS.Signals[]
  throw new InvalidArgumentError(
    `${NAME}: invalid signals ${JSON.stringify(value) ?? String(value)}: expected true, false or a list such as ["SIGTERM"]`,
  )
}

/**
 * Registers an Express app or any `http.Server` in etcd when it listens and deregisters it before it
 * drains: the lifecycle of @etcdkit/fastify for servers without hooks.
 */
export function etcdDiscovery(options: EtcdDiscoveryOptions): EtcdDiscovery {
  if (typeof options !== 'object' || options === null)
    throw new InvalidArgumentError(`${NAME}: invalid options ${String(options)}: expected an object`)
  const { signals: signalOption, closeGrace, ...rest } = options
  const signals = parseSignals(signalOption)
  if (closeGrace !== undefined) {
    checkMs(closeGrace, `${NAME} closeGrace`)
    if (rest.closeTimeout !== undefined)
      throw new InvalidArgumentError(
        `${NAME}: give closeTimeout or closeGrace (deprecated), not both: closeTimeout counts from the start of the close`,
      )
  }
  const lifecycle = new ServerRegistration(rest, { integration: NAME })
  const kit = lifecycle.kit
  // code with no kit at hand (@etcdkit/decorators) uses this one while it is open
  setDefaultKit(kit)
  let server: AnyServer | undefined
  let closing: Promise<void> | undefined
  let drain: ConnectionDrain | undefined
  /** Answers the health route, if this request is for it. */
  const health = (req: IncomingMessage, res: ServerResponse): boolean => {
    const route = lifecycle.healthRoute
    if (route === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) return false
    const path = req.url?.split('?', 1)[0]
    if (path !== route) return false
    const { status, body } = lifecycle.healthResponse()
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
    res.end(req.method === 'HEAD' ? undefined : body)
    return true
  }

  const closeServer = async () => {
    const s = server
    if (!s?.listening) return
    const closed = new Promise<void>((resolve) => s.close(() => resolve()))
    // a request that never ends would keep the server (and a signal's exit) waiting for ever
    drain?.begin(closeGrace ?? lifecycle.closeTimeRemaining())
    await closed
  }

  let signalled = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      // a second signal: the operator will not wait for the drain (as most servers do, exit now)
      kit.logger.warn({ signal }, 'second signal while closing: destroying connections and exiting now')
      removeSignalHandlers()
      drain?.destroyAll()
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      return
    }
    signalled = true
    kit.logger.info({ signal }, 'closing on signal')
    discovery.close().then(
      () => {
        removeSignalHandlers()
        // the default action (exit) was suppressed by listening: restore it unless the app handles it
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      },
      (err: unknown) => {
        kit.logger.error({ err, signal }, 'graceful close failed')
        removeSignalHandlers()
        process.exitCode = 1
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
      },
    )
  }
  const removeSignalHandlers = () => {
    for (const s of signals) process.off(s, onSignal)
  }

  const waitListening = (s: AnyServer) =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        s.off('listening', done)
        s.off('error', done)
        if (err) reject(err)
        else resolve()
      }
      s.once('listening', done)
      s.once('error', done)
    })

  const discovery: EtcdDiscovery = {
    kit,
    get server() {
      return server
    },
    get address() {
      return lifecycle.address
    },

    async attach<S extends AnyServer>(s: S): Promise<S> {
      if (closing) throw new InvalidArgumentError(`${NAME}: this discovery is closed`)
      if (server !== undefined && server !== s)
        throw new InvalidArgumentError(`${NAME}: already attached to a server (one server per discovery)`)
      if (server === s) throw new InvalidArgumentError(`${NAME}: this server is already attached`)
      server = s
      drain = new ConnectionDrain(s, (inFlight) =>
        kit.logger.warn(
          { inFlight, closeTimeout: lifecycle.closeTimeout, closeGrace },
          'requests still in flight when the close timed out: their connections were destroyed',
        ),
      )
      for (const sig of signals) process.on(sig, onSignal)
      try {
        if (!s.listening) await waitListening(s)
      } catch (err) {
        // not listening, nothing registered: the discovery can be used again
        drain.dispose()
        drain = undefined
        removeSignalHandlers()
        server = undefined
        throw err
      }
      await lifecycle.register(s.address())
      return s
    },

    async listen(app: RequestListener, port?: number, host?: string) {
      const s = createServer((req, res) => health(req, res) || app(req, res))
      const listening = discovery.attach(s)
      s.listen(port ?? 0, host)
      try {
        await listening
      } catch (err) {
        if (s.listening) await discovery.close().catch(() => {})
        throw err
      }
      return s
    },

    close() {
      closing ??= lifecycle.close(closeServer).finally(() => drain?.dispose())
      return closing
    },

    middleware(req, res, next) {
      ;(req as IncomingMessage & { etcd: EtcdKit }).etcd = kit
      if (health(req, res)) return
      const signal = callerDeadline(req.headers)
      if (signal?.aborted) {
        // nobody waits for this answer any more: shed the work
        res.statusCode = 504
        res.setHeader('content-type', 'application/json; charset=utf-8')
        res.end(JSON.stringify({ error: 'the caller had no time left (etcdkit-timeout-ms: 0)' }))
        return
      }
      if (signal !== undefined)
        (req as IncomingMessage & { callerDeadline?: AbortSignal }).callerDeadline = signal
      next()
    },

    [Symbol.asyncDispose]() {
      return discovery.close()
    },
  }
  return discovery
}

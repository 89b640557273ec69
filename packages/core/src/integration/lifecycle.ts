import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo, Server as NetServer } from 'node:net'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { EtcdUnavailableError, InvalidArgumentError, show } from '../errors.js'
import { EtcdKit, type EtcdKitOptions } from '../kit.js'
import { healthResponse } from '../ops/health.js'
import { isNoopLogger, type Logger } from '../ops/logger.js'
import { bindWriters, type DialectWriteSpec } from '../registry/dialects/index.js'
import { checkMetadata, type InstanceMetadata } from '../registry/instance.js'
import type { Registration } from '../registry/registry.js'
import { sleep } from '../util.js'
import { checkAddress, checkMs, checkServiceName, isPlainObject, MAX_TIMER_MS } from '../validate.js'

/** The options every framework integration (Fastify, Express, a bare `http.Server`) takes. */
export interface ServerRegistrationOptions {
  /** The service name this server is registered as: letters, digits, `.`, `_`, `-`. */
  service: string
  /**
   * Options for an `EtcdKit` the integration creates (and closes when the server closes). Give either this
   * or `kit`; with neither, a kit is created with the defaults (`ETCD_ENDPOINTS`, else 127.0.0.1:2379).
   */
  etcd?: EtcdKitOptions
  /** A kit you created (one per process): it is used, and left open on close unless `closeKit` says so. */
  kit?: EtcdKit
  /** Whether closing the server closes the kit. @default true when the integration created the kit */
  closeKit?: boolean
  /** Metadata written with the registration (`version`, `weight`, `zone`, `protocol`, `tags`, ...). */
  metadata?: InstanceMetadata
  /**
   * The registry dialects to register in, all in one txn (`['etcd', 'go-zero', 'kratos']` makes the server
   * visible to etcd's Go clients, go-zero and Kratos clients at once; see docs/POLYGLOT.md). @default ['etcd']
   */
  dialects?: readonly DialectWriteSpec[]
  /**
   * The address other services reach this one at: `host` (the bound port is added) or `host:port`
   * (IPv6 as `[::1]` or `[::1]:8080`). @default the bound address; `0.0.0.0` / `::` become the host's
   * first non-internal address (IPv4 preferred)
   */
  advertise?: string
  /**
   * Milliseconds to wait between deregistering and closing the server, so that clients watching the
   * registry stop sending requests here before the server stops accepting them. @default 1_000
   */
  drainDelay?: number
  /**
   * The longest a close may take, in ms from its start (deregistering, `drainDelay`, then requests in flight
   * finishing): once it has passed, the connections still open are destroyed, so that a request that never
   * ends cannot hold the server (or a signal's exit) open. At least `drainDelay`.
   * @default drainDelay + 5_000
   */
  closeTimeout?: number
  /** How long listening waits for etcd to write the registration, in ms. @default 10_000 */
  registerTimeout?: number
  /**
   * When true, the server starts even if etcd cannot be reached: listening resolves at once and the
   * registration is written as soon as etcd answers (failures are logged). When false, listening fails
   * with `ETCDKIT_ETCD_UNAVAILABLE` after `registerTimeout`. @default false
   */
  registerInBackground?: boolean
  /**
   * Serve the kit's health on this path (e.g. `"/health/etcd"`): `GET` answers 200 when the kit is ready
   * (registration written, views current), else 503 (also while deregistered and draining), with the
   * `kit.health()` snapshot as JSON. Nothing secret is in it. @default undefined (no route)
   */
  healthRoute?: string
}

/** What the integration itself brings: its name (for messages) and its logger (for a kit it creates). */
export interface ServerRegistrationContext {
  /** For error messages, e.g. `"@etcdkit/fastify"`. */
  integration: string
  /**
   * The logger for a kit the integration creates, unless `etcd.logger` is given. Ignored when it drops
   * everything (Fastify's logger when logging is off): the kit's default logger is used instead.
   */
  logger?: Logger
}

const OPTION_KEYS = new Set([
  'service',
  'etcd',
  'kit',
  'closeKit',
  'metadata',
  'dialects',
  'advertise',
  'drainDelay',
  'closeTimeout',
  'registerTimeout',
  'registerInBackground',
  'healthRoute',
])

interface Advertise {
  host: string | undefined
  port: number | undefined
}

/** Splits an `advertise` option into host and port, or throws naming the value. */
function parseAdvertise(value: unknown, integration: string): Advertise {
  if (value === undefined) return { host: undefined, port: undefined }
  const bad = () =>
    new InvalidArgumentError(
      `${integration}: invalid advertise ${show(value)}: expected "host", "host:port", "[ipv6]" or "[ipv6]:port"`,
    )
  if (typeof value !== 'string' || value === '') throw bad()
  let host: string
  let port: string | undefined
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(value)
  if (bracketed) {
    host = bracketed[1]!
    port = bracketed[2]
  } else if (isIP(value) === 6) {
    host = value
  } else if (value.includes(':')) {
    const colon = value.lastIndexOf(':')
    host = value.slice(0, colon)
    port = value.slice(colon + 1)
  } else {
    host = value
  }
  try {
    // checkAddress knows what a valid host and port are; a placeholder port checks a bare host
    const h = isIP(host) === 6 ? `[${host}]` : host
    checkAddress(`${h}:${port ?? '1'}`, 'advertise')
  } catch {
    throw bad()
  }
  return { host, port: port === undefined ? undefined : Number(port) }
}

/** `host:port`, with an IPv6 host in brackets. */
export function formatAddress(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

const UNSPECIFIED = new Set(['0.0.0.0', '::', '::ffff:0.0.0.0', ''])

/**
 * The host's first non-internal address: IPv4 preferred; IPv6 (not link-local) only when the server
 * listens on `::` and no IPv4 address exists. `undefined` when the host has no such address.
 */
export function hostAddress(allowIPv6: boolean): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? [])
  const external = all.filter((i) => !i.internal)
  const v4 = external.find((i) => i.family === 'IPv4')
  if (v4) return v4.address
  if (!allowIPv6) return undefined
  return external.find((i) => i.family === 'IPv6' && !i.address.toLowerCase().startsWith('fe80:'))?.address
}

/**
 * The address to advertise for a server bound at `bound`: `advertise` wins (its port too, when it has
 * one); an unspecified bound host (`0.0.0.0`, `::`) becomes the host's first non-internal address.
 */
export function advertisedAddress(
  bound: AddressInfo | string | null,
  advertise?: string,
  log?: Logger,
  integration = 'etcdkit',
): string {
  const adv = parseAdvertise(advertise, integration)
  if (adv.host !== undefined && adv.port !== undefined) return formatAddress(adv.host, adv.port)
  if (bound === null || typeof bound === 'string') {
    throw new InvalidArgumentError(
      `${integration}: the server listens on ${bound === null ? 'nothing' : `the pipe ${show(bound)}`}, ` +
        'which other services cannot reach: set advertise to "host:port"',
    )
  }
  let host = adv.host ?? bound.address
  if (adv.host === undefined && UNSPECIFIED.has(bound.address)) {
    const ipv6 = bound.address !== '0.0.0.0'
    const found = hostAddress(ipv6)
    if (found === undefined) {
      host = ipv6 && bound.family === 'IPv6' && !hostAddress(false) ? '::1' : '127.0.0.1'
      log?.warn(
        { bound: bound.address, advertised: host },
        'this host has no non-internal address: advertising loopback (set advertise to override)',
      )
    } else {
      host = found
    }
  }
  return formatAddress(host, bound.port)
}

/**
 * The checks `new ServerRegistration(options)` makes, without creating a kit: throws
 * `ETCDKIT_INVALID_ARGUMENT` naming the bad option. For integrations that take these options before the
 * server exists (NestJS's `forRoot`). Kit options under `etcd` are checked when the kit is created (or by
 * `checkKitOptions`).
 */
export function checkServerRegistrationOptions(options: ServerRegistrationOptions, integration: string) {
  const name = integration
  if (!isPlainObject(options as unknown))
    throw new InvalidArgumentError(`${name}: invalid options ${show(options)}: expected an object`)
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(
        `${name}: unknown option ${show(key)} (known: ${[...OPTION_KEYS].join(', ')})`,
      )
  }
  const service = checkServiceName(options.service, `${name} service name`)
  let metadata: InstanceMetadata
  try {
    metadata = checkMetadata(options.metadata)
    // checked now, with a stand-in address (the real one is known once the server listens)
    const stand = { service, address: '127.0.0.1:1', metadata }
    bindWriters(options.dialects, stand, { registryPrefix: 'services/' })
  } catch (err) {
    throw new InvalidArgumentError(`${name}: ${(err as Error).message}`)
  }
  const drainDelay = checkMs(options.drainDelay ?? 1_000, `${name} drainDelay`)
  const closeTimeout = checkMs(
    options.closeTimeout ?? Math.min(drainDelay + 5_000, MAX_TIMER_MS),
    `${name} closeTimeout`,
  )
  if (closeTimeout < drainDelay)
    throw new InvalidArgumentError(
      `${name}: invalid closeTimeout ${show(closeTimeout)}: expected at least drainDelay (${drainDelay} ms), which the close always waits`,
    )
  const registerTimeout = checkMs(options.registerTimeout ?? 10_000, `${name} registerTimeout`, true)
  const registerInBackground = options.registerInBackground ?? false
  if (typeof registerInBackground !== 'boolean')
    throw new InvalidArgumentError(
      `${name}: invalid registerInBackground ${show(registerInBackground)}: expected a boolean`,
    )
  const healthRoute = options.healthRoute
  if (healthRoute !== undefined && (typeof healthRoute !== 'string' || !/^\/[^\s?#]*$/.test(healthRoute)))
    throw new InvalidArgumentError(
      `${name}: invalid healthRoute ${show(healthRoute)}: expected a path such as "/health/etcd"`,
    )
  parseAdvertise(options.advertise, name)
  const { etcd, kit } = options
  if (etcd !== undefined && kit !== undefined)
    throw new InvalidArgumentError(`${name}: give either etcd (options for a new kit) or kit, not both`)
  if (kit !== undefined) {
    if (!(kit instanceof EtcdKit))
      throw new InvalidArgumentError(`${name}: invalid kit ${show(kit)}: expected an EtcdKit`)
    if (kit.closed) throw new InvalidArgumentError(`${name}: the kit given is already closed`)
  } else if (etcd !== undefined && !isPlainObject(etcd as unknown)) {
    throw new InvalidArgumentError(`${name}: invalid etcd ${show(etcd)}: expected EtcdKit options`)
  }
  const closeKit = options.closeKit ?? kit === undefined
  if (typeof closeKit !== 'boolean')
    throw new InvalidArgumentError(`${name}: invalid closeKit ${show(closeKit)}: expected a boolean`)
  return {
    service,
    metadata,
    dialects: options.dialects,
    drainDelay,
    closeTimeout,
    registerTimeout,
    registerInBackground,
    healthRoute,
    closeKit,
  }
}

/**
 * The lifecycle every framework integration shares: register when the server listens (resolving once the
 * key is written), and on close deregister first, wait `drainDelay`, let the server drain and close, then
 * close the kit if the integration created it. The framework-specific part only says when those happen.
 */
export class ServerRegistration implements AsyncDisposable {
  readonly kit: EtcdKit
  readonly service: string
  readonly metadata: InstanceMetadata
  readonly dialects: readonly DialectWriteSpec[] | undefined
  readonly drainDelay: number
  /** The longest a close may take, from the start of `deregister()`; see `closeTimeRemaining()`. */
  readonly closeTimeout: number
  readonly registerTimeout: number
  readonly registerInBackground: boolean
  /** The path of the health route, if the integration is to serve one. */
  readonly healthRoute: string | undefined
  /** Whether `close()` / `closeKit()` closes the kit. */
  readonly ownsKit: boolean
  readonly #advertise: string | undefined
  readonly #integration: string
  readonly #abort = new AbortController()
  #registering: Promise<Registration | undefined> | undefined
  #registration: Registration | undefined
  #deregistering: Promise<void> | undefined
  #closing: Promise<void> | undefined
  #address: string | undefined
  #closeStarted: number | undefined

  constructor(options: ServerRegistrationOptions, context: ServerRegistrationContext) {
    const name = context.integration
    const checked = checkServerRegistrationOptions(options, name)
    this.#integration = name
    this.service = checked.service
    this.metadata = checked.metadata
    this.dialects = checked.dialects
    this.drainDelay = checked.drainDelay
    this.closeTimeout = checked.closeTimeout
    this.registerTimeout = checked.registerTimeout
    this.registerInBackground = checked.registerInBackground
    this.healthRoute = checked.healthRoute
    this.#advertise = options.advertise
    const { etcd, kit } = options
    if (kit !== undefined) {
      this.kit = kit
    } else {
      // the service is the kit's own too: its config/{service}/ keys override the shared ones
      this.kit = new EtcdKit({
        ...(context.logger && !isNoopLogger(context.logger) ? { logger: context.logger } : {}),
        service: this.service,
        ...etcd,
      })
    }
    this.ownsKit = checked.closeKit
  }

  /**
   * The health route's answer: 200 with the `kit.health()` snapshot as JSON when ready, else 503 (also
   * once deregistration has begun: the instance is draining and should get no new traffic).
   */
  healthResponse(): { status: 200 | 503; body: string } {
    const snapshot = this.kit.health()
    if (this.#deregistering || this.#closing) {
      snapshot.ready = false
      snapshot.reasons.unshift('deregistered: the server is closing')
    }
    return healthResponse(snapshot)
  }

  /** The advertised address, once the server listens. */
  get address(): string | undefined {
    return this.#address
  }

  /** The registration, once written (and until deregistered). */
  get registration(): Registration | undefined {
    return this.#registration
  }

  /**
   * Registers the server bound at `bound` (`server.address()`). Resolves once the key is written (or at
   * once with `registerInBackground`); rejects with `ETCDKIT_ETCD_UNAVAILABLE` after `registerTimeout`.
   * Only the first call registers; later calls return the same promise.
   */
  register(bound: AddressInfo | string | null): Promise<Registration | undefined> {
    if (this.#registering) return this.#registering
    try {
      this.#address = advertisedAddress(bound, this.#advertise, this.kit.logger, this.#integration)
    } catch (err) {
      this.#registering = Promise.reject(err)
      return this.#registering
    }
    const address = this.#address
    if (this.#closing || this.#deregistering) {
      this.#registering = Promise.resolve(undefined)
      return this.#registering
    }
    if (this.registerInBackground) {
      void this.#registerUntilDone(address)
      this.#registering = Promise.resolve(undefined)
    } else {
      this.#registering = this.#registerOnce(address)
    }
    return this.#registering
  }

  async #registerOnce(address: string): Promise<Registration> {
    try {
      const reg = await this.kit.register({
        service: this.service,
        address,
        metadata: this.metadata,
        ...(this.dialects ? { dialects: this.dialects } : {}),
        timeout: this.registerTimeout,
        signal: this.#abort.signal,
      })
      this.#registration = reg
      this.kit.logger.info({ service: this.service, address, key: reg.key }, 'registered in etcd')
      return reg
    } catch (err) {
      if (err instanceof EtcdUnavailableError) {
        throw new EtcdUnavailableError(
          `${this.#integration}: could not register ${show(address)} as ${show(this.service)}: ${err.message}`,
          err.cause ?? err,
        )
      }
      throw err
    }
  }

  async #registerUntilDone(address: string): Promise<void> {
    for (;;) {
      if (this.#abort.signal.aborted) return
      try {
        await this.#registerOnce(address)
        return
      } catch (err) {
        if (this.#abort.signal.aborted) return
        this.kit.logger.warn(
          { err, service: this.service, address },
          'could not register in etcd yet; the server is serving and will register once etcd answers',
        )
        await sleep(1_000, this.#abort.signal).catch(() => {})
      }
    }
  }

  /**
   * Deletes the registration, then waits `drainDelay` (skipped when nothing was registered). Call it
   * before the server stops accepting connections. Idempotent: later calls return the same promise.
   */
  deregister(): Promise<void> {
    this.#closeStarted ??= Date.now()
    this.#deregistering ??= (async () => {
      this.#abort.abort(new Error(`${this.#integration}: the server is closing`))
      await this.#registering?.catch(() => {})
      const reg = this.#registration
      if (!reg) return
      this.#registration = undefined
      try {
        await reg.deregister()
        this.kit.logger.info({ service: this.service, address: reg.address }, 'deregistered from etcd')
      } catch (err) {
        this.kit.logger.warn({ err, key: reg.key }, 'could not deregister; the key expires with the lease')
      }
      if (this.drainDelay > 0) await sleep(this.drainDelay)
    })()
    return this.#deregistering
  }

  /**
   * What is left of `closeTimeout` (ms, at least 0), counted from the first `deregister()` (all of it when
   * the close has not begun): pass it to `ConnectionDrain.begin()`.
   */
  closeTimeRemaining(): number {
    if (this.#closeStarted === undefined) return this.closeTimeout
    return Math.max(0, this.closeTimeout - (Date.now() - this.#closeStarted))
  }

  /** Closes the kit if this registration owns it (else does nothing). Idempotent. */
  async closeKit(): Promise<void> {
    if (this.ownsKit) await this.kit.close()
  }

  /**
   * The whole shutdown in order: deregister, wait `drainDelay`, `closeServer()` (which should resolve once
   * in-flight requests are done), then close the kit if owned. Idempotent.
   */
  close(closeServer?: () => Promise<void>): Promise<void> {
    this.#closing ??= (async () => {
      await this.deregister()
      try {
        await closeServer?.()
      } finally {
        await this.closeKit()
      }
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/** A server with `http.Server`'s `closeIdleConnections()` (HTTP/1 servers on Node >= 18.2 have it). */
export type DrainableServer = NetServer & { closeIdleConnections?: () => void }

/**
 * Lets an HTTP/1 server close without waiting for kept-alive sockets: once `begin()` is called, every
 * response still to be sent ends its connection, and sockets are closed as soon as they fall idle. Without
 * it, a request in flight when close starts leaves its socket open until `keepAliveTimeout` (72 s in
 * Fastify), and close waits for it. `begin(forceAfter)` also bounds the wait: connections still open
 * after `forceAfter` ms are destroyed (a request that never ends would hold the close for ever).
 */
export class ConnectionDrain {
  readonly server: DrainableServer
  readonly #inFlight = new Set<ServerResponse>()
  #draining = false
  #force: NodeJS.Timeout | undefined
  readonly #track = (_req: IncomingMessage, res: ServerResponse) => {
    if (this.#draining && !res.headersSent) res.shouldKeepAlive = false
    this.#inFlight.add(res)
    res.once('close', () => {
      this.#inFlight.delete(res)
      // the socket is marked idle after the response's close event: reap it on the next turn
      if (this.#draining) setImmediate(() => this.server.closeIdleConnections?.())
    })
  }

  readonly #onForced: ((inFlight: number) => void) | undefined

  /** `onForced` is told how many requests were cut when connections are destroyed (for a warning). */
  constructor(server: DrainableServer, onForced?: (inFlight: number) => void) {
    this.server = server
    this.#onForced = onForced
    server.on('request', this.#track)
  }

  /** Requests in flight right now. */
  get inFlight(): number {
    return this.#inFlight.size
  }

  /**
   * Call when the server starts closing (before or right after `server.close()`). With `forceAfter` (ms),
   * connections still open that long after are destroyed (`ServerRegistration.closeTimeRemaining()`).
   * Idempotent: the first `forceAfter` given holds.
   */
  begin(forceAfter?: number) {
    this.#draining = true
    for (const res of this.#inFlight) if (!res.headersSent) res.shouldKeepAlive = false
    this.server.closeIdleConnections?.()
    if (forceAfter !== undefined && this.#force === undefined) {
      this.#force = setTimeout(() => this.destroyAll(), Math.min(Math.max(0, forceAfter), MAX_TIMER_MS))
      // a close that finished in time must not be held open by this timer
      this.#force.unref()
    }
  }

  /** Destroys every connection still open (requests in flight included). */
  destroyAll() {
    const open = this.#inFlight.size
    const all = (this.server as { closeAllConnections?: () => void }).closeAllConnections
    if (all) all.call(this.server)
    else for (const res of this.#inFlight) res.socket?.destroy()
    if (open > 0) this.#onForced?.(open)
  }

  /** Stops tracking the server's requests (and cancels a pending `begin(forceAfter)`). */
  dispose() {
    clearTimeout(this.#force)
    this.server.off('request', this.#track)
  }
}

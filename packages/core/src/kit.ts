import { EventEmitter } from 'node:events'
import { inspect, isDeepStrictEqual } from 'node:util'
import { handleWhen, noop, retry, wrap } from 'cockatiel'
import { Etcd3, type IOptions, isRecoverableError } from 'etcd3'
import { ConfigCache, type ConfigCacheOptions } from './config/cache.js'
import { Config } from './config/config.js'
import { type Election, ElectionHub } from './coordination/election.js'
import { type Lock, LockHub } from './coordination/lock.js'
import { QueueHub } from './coordination/queue.js'
import { ClosedError, InvalidArgumentError, isAuthStoreMoved, show } from './errors.js'
import { StreamEndpoints } from './etcd/endpoints.js'
import { type AuthOptions, etcdSecurity, type TlsOptions } from './etcd/etcd-options.js'
import { Keyspace } from './etcd/keyspace.js'
import { Session, type SessionState } from './etcd/session.js'
import { WatchHub } from './etcd/watch.js'
import { HealthMonitor, type HealthSnapshot } from './ops/health.js'
import { type Logger, type LoggerLike, silentLogger, toLogger } from './ops/logger.js'
import { bindMeterProvider } from './ops/metrics.js'
import { SessionRecordWriter } from './ops/session-record.js'
import { Catalog } from './registry/catalog.js'
import { bindCatalog, bindReader, type DialectName } from './registry/dialects/index.js'
import { type DiscoverOptions, type Discovery, DiscoveryHub } from './registry/discovery.js'
import { type RegisterOptions, type Registration, Registry } from './registry/registry.js'
import { ServiceClient, type ServiceClientOptions, serviceClientOptions } from './registry/service-client.js'
import { settledWithin } from './util.js'
import {
  checkAddress,
  checkKeys,
  checkMs,
  checkPrefix,
  checkServiceName,
  checkTtl,
  isPlainObject,
} from './validate.js'

export interface EtcdKitOptions {
  /**
   * etcd client endpoints, `host:port` or `http(s)://host:port`.
   * @default process.env.ETCD_ENDPOINTS (comma separated), else ["127.0.0.1:2379"]
   */
  endpoints?: string[] | string
  /** Session lease TTL in seconds: how long after this process dies its registrations and locks go. @default 10 */
  ttl?: number
  /**
   * etcd user authentication. Without `tls`, to an endpoint that is not loopback, the password crosses the
   * network in clear text (a warning is logged).
   */
  auth?: AuthOptions
  /**
   * TLS to etcd: the CA that signed etcd's certificate, and a client certificate and key for mutual TLS;
   * each PEM text, a Buffer, a file path, or an array of them.
   */
  tls?: TlsOptions
  /**
   * Where warnings (lease lost, config value refused, ...) go: pino or a pino-like logger, a NestJS
   * `LoggerService`, or `console`. @default warnings and errors to stderr as JSON lines
   */
  logger?: LoggerLike
  /**
   * A prefix put in front of every key this kit reads or writes (like Go's `namespace.NewKV`): tenants or
   * test runs sharing one etcd. @default ""
   */
  namespace?: string
  /** Where registrations live: `{registryPrefix}{service}/{address}`. @default "services/" */
  registryPrefix?: string
  /** Deadline of each unary etcd call, in ms. @default 5_000 */
  callTimeout?: number
  /** Where configuration lives: `{configPrefix}{key}`, and `{configPrefix}{service}/{key}`. @default "config/" */
  configPrefix?: string
  /**
   * This process's own service name: its `{configPrefix}{service}/{key}` values override the shared
   * `{configPrefix}{key}`. @default undefined (shared keys only)
   */
  service?: string
  /**
   * Keep a local copy of the configuration in `dir` (one file per namespace, config prefix and service),
   * so a process that starts while etcd is unreachable serves the last values it knew (`fromCache`, a
   * warning) until etcd answers. See docs/CONFIG.md. @default undefined (no cache)
   */
  configCache?: ConfigCacheOptions
}

/** `kit.on(...)`: what an app may want to alert on without reaching into `kit.session`. */
export interface EtcdKitEvents {
  /** The session's state changed (`alive`, `suspect`, `lost`, ...): the same as `kit.session`'s `state`. */
  session: [state: SessionState]
  /** What `health()` reports changed (readiness, session, registrations, views, locks, leaderships). */
  health: [snapshot: HealthSnapshot]
}

function parseEndpoints(value: unknown): string[] {
  const list = typeof value === 'string' ? value.split(',').map((e) => e.trim()) : value
  if (!Array.isArray(list) || list.length === 0) {
    throw new InvalidArgumentError(
      `invalid endpoints ${show(value)}: expected a non-empty list of "host:port"`,
    )
  }
  return list.map((e: unknown) => {
    if (typeof e !== 'string')
      throw new InvalidArgumentError(`invalid endpoint ${show(e)}: expected "host:port"`)
    const m = /^(https?:\/\/)?(.*?)\/?$/.exec(e)!
    checkAddress(m[2], 'endpoint')
    return e
  })
}

/** Every option `EtcdKitOptions` has: any other key is a typo, refused rather than silently ignored. */
const KIT_OPTIONS = [
  'endpoints',
  'ttl',
  'auth',
  'tls',
  'logger',
  'namespace',
  'registryPrefix',
  'callTimeout',
  'configPrefix',
  'service',
  'configCache',
] as const

/** Every option of `new EtcdKit(options)`, checked and with its default: nothing created yet. */
function checkedKitOptions(options: EtcdKitOptions, quiet = false) {
  if (!isPlainObject(options as unknown))
    throw new InvalidArgumentError(`invalid EtcdKit options ${show(options)}`)
  checkKeys(options, KIT_OPTIONS, 'EtcdKit')
  const endpoints = parseEndpoints(options.endpoints ?? process.env.ETCD_ENDPOINTS ?? ['127.0.0.1:2379'])
  const ttl = checkTtl(options.ttl ?? 10)
  const namespace = checkPrefix(options.namespace ?? '', 'namespace')
  const registryPrefix = checkPrefix(options.registryPrefix ?? 'services/', 'registryPrefix')
  const configPrefix = checkPrefix(options.configPrefix ?? 'config/', 'configPrefix')
  const serviceName = options.service === undefined ? undefined : checkServiceName(options.service)
  const callTimeout = checkMs(options.callTimeout ?? 5_000, 'callTimeout', true)
  const logger = toLogger(options.logger)
  // a check-only run warns nothing: the kit created later says it once
  const security = etcdSecurity(endpoints, options.auth, options.tls, quiet ? silentLogger : logger)
  const cache =
    options.configCache === undefined
      ? undefined
      : new ConfigCache(options.configCache, namespace, configPrefix, serviceName, logger)
  return {
    endpoints,
    ttl,
    namespace,
    registryPrefix,
    configPrefix,
    serviceName,
    callTimeout,
    logger,
    security,
    cache,
    cacheOptions: options.configCache,
  }
}

/**
 * The checks `new EtcdKit(options)` makes, without creating anything (no client, no lease): throws the
 * same `ETCDKIT_INVALID_ARGUMENT` the constructor would. For integrations that take kit options early
 * (NestJS's `forRoot`) and create the kit later.
 */
export function checkKitOptions(options: EtcdKitOptions): void {
  checkedKitOptions(options, true)
}

let readInternals: (kit: EtcdKit) => KitInternals

/** A kit's keyspace and watch hub: for core's own modules (the inspection API), in no package entry. */
export interface KitInternals {
  keyspace: Keyspace
  watchHub: WatchHub
  /** The config machinery on another prefix of the namespace (one per prefix, closed with the kit). */
  configAt(prefix: string): Config
}

/** The keyspace and watch hub of `kit`, which are private fields: core's modules only. */
export function kitInternals(kit: EtcdKit): KitInternals {
  return readInternals(kit)
}

/**
 * One per process: the etcd client, the session lease, the watch stream, and everything built on them
 * (registrations, discovery, locks, configuration). `close()` deregisters, releases and revokes.
 */
export class EtcdKit extends EventEmitter<EtcdKitEvents> implements AsyncDisposable {
  readonly endpoints: readonly string[]
  readonly ttl: number
  readonly namespace: string
  readonly registryPrefix: string
  readonly configPrefix: string
  /** The kit's own service (the `service` option), whose config keys override the shared ones. */
  readonly serviceName: string | undefined
  readonly logger: Logger
  /** The underlying etcd3 client, for what etcdkit does not cover. Keys written through it ignore `namespace`. */
  readonly client: Etcd3
  readonly #keyspace: Keyspace
  readonly #watchHub: WatchHub
  static {
    readInternals = (kit) => ({
      keyspace: kit.#keyspace,
      watchHub: kit.#watchHub,
      configAt: (prefix) => kit.#configAt(prefix),
    })
  }
  /** The session: one lease for everything this kit holds. */
  readonly session: Session
  /** Live configuration: `kit.config.value(key, { parse, validate, default })`, `get`, `set`, `delete`, `watch`. */
  readonly config: Config
  readonly #registry: Registry
  readonly #discovery: DiscoveryHub
  readonly #services = new Map<string, ServiceClient>()
  readonly #queues: QueueHub
  readonly #locks: LockHub
  readonly #elections: ElectionHub
  readonly #record: SessionRecordWriter
  readonly #health: HealthMonitor
  readonly #streams: StreamEndpoints
  readonly #callTimeout: number
  /** `configAt`'s trees: the config machinery on other prefixes (the flag provider's `flags/`). */
  readonly #prefixConfigs = new Map<string, Config>()
  readonly #cacheOptions: ConfigCacheOptions | undefined
  #closing: Promise<void> | undefined

  constructor(options: EtcdKitOptions = {}) {
    super()
    // checked before the client exists, so a bad option leaks nothing
    const checked = checkedKitOptions(options)
    this.endpoints = checked.endpoints
    this.ttl = checked.ttl
    this.namespace = checked.namespace
    this.registryPrefix = checked.registryPrefix
    this.configPrefix = checked.configPrefix
    this.serviceName = checked.serviceName
    const callTimeout = checked.callTimeout
    this.#callTimeout = callTimeout
    this.logger = checked.logger
    const { security, cache } = checked
    this.#cacheOptions = checked.cacheOptions
    const etcdOptions: IOptions = {
      hosts: [...this.endpoints],
      // Our own loops retry with backoff; etcd3's per-host breaker (3 failures, then 5 s of refusals)
      // would keep calls failing for seconds after etcd is back. Retry once on another endpoint instead;
      // and send again, at once, a request refused because the auth store moved on (it was not applied).
      faultHandling: {
        host: () => noop,
        global: wrap(
          retry(handleWhen(isAuthStoreMoved), { maxAttempts: 3 }),
          retry(handleWhen(isRecoverableError), { maxAttempts: this.endpoints.length > 1 ? 1 : 0 }),
        ),
      },
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': 100,
        // a call after an outage fails until its channel's next reconnect attempt: keep that soon, so
        // intent held through the outage (a deregistration, a release) lands within a second of etcd
        'grpc.max_reconnect_backoff_ms': 500,
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeout }),
      ...security,
    }
    this.client = new Etcd3(etcdOptions)
    this.#keyspace = new Keyspace(this.client.kv, this.namespace)
    // the keepalive and watch streams each run on one chosen member, and leave it when it goes silent
    this.#streams = new StreamEndpoints(this.endpoints, this.client, etcdOptions)
    this.#watchHub = new WatchHub(this.#streams, this.logger)
    bindMeterProvider()
    this.session = new Session(this.client.leaseClient, this.ttl, this.logger, this.#streams)
    this.session.on('state', (state) => this.emit('session', state))
    this.#record = new SessionRecordWriter(this.#keyspace, this.session, this.logger, this.serviceName)
    this.#registry = new Registry(
      this.#keyspace,
      this.session,
      this.#watchHub,
      this.logger,
      this.registryPrefix,
      this.endpoints,
      callTimeout,
    )
    this.#discovery = new DiscoveryHub(this.#keyspace, this.#watchHub, this.logger)
    this.config = new Config(
      this.#keyspace,
      this.#watchHub,
      this.logger,
      this.configPrefix,
      this.serviceName,
      cache,
    )
    this.#queues = new QueueHub(this.#keyspace, this.#watchHub, this.logger)
    this.#locks = new LockHub(
      this.#keyspace,
      this.session,
      this.#queues,
      this.logger,
      this.endpoints,
      callTimeout,
    )
    this.#elections = new ElectionHub(this.#keyspace, this.session, this.#queues, this.#watchHub, this.logger)
    this.#health = new HealthMonitor(
      {
        session: this.session,
        endpoints: this.endpoints,
        streamFailures: () => this.#streams.failures,
        watchHub: this.#watchHub,
        registrations: () => this.#registry.health(),
        views: () => [
          ...this.#discovery.views(),
          ...this.config.views(),
          // named with their prefix: `flags/*` beside the config prefix's own `rate-limit`
          ...[...this.#prefixConfigs.values()].flatMap((c) =>
            c.views().map((view) => ({ ...view, name: `${c.prefix}${view.name}` })),
          ),
        ],
        locks: () => this.#locks.activity.snapshot(),
        elections: () => this.#elections.activity.snapshot(),
        record: () => this.#record.record,
      },
      this,
      (snapshot) => this.emit('health', snapshot),
    )
  }

  /**
   * The config machinery (one mirror: read, watch, last good values, writer records, history, rollback,
   * its own `configCache` file) on `prefix` instead of the config prefix, without service overrides.
   * One per prefix; closed with the kit.
   */
  #configAt(prefix: string): Config {
    if (this.#closing) throw new ClosedError('the kit')
    let config = this.#prefixConfigs.get(prefix)
    if (!config) {
      const cache =
        this.#cacheOptions === undefined
          ? undefined
          : new ConfigCache(this.#cacheOptions, this.namespace, prefix, undefined, this.logger)
      // no service overrides (a key is `{prefix}{key}` exactly); writer records still name the service
      config = new Config(
        this.#keyspace,
        this.#watchHub,
        this.logger,
        prefix,
        undefined,
        cache,
        this.serviceName,
      )
      this.#prefixConfigs.set(prefix, config)
    }
    return config
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined
  }

  /**
   * Registers `address` as an instance of `service` on the session lease; resolves once the key is written.
   * The key is written again on a new lease, or when someone else deletes it, until `deregister()`.
   */
  register(options: RegisterOptions): Promise<Registration> {
    if (this.#closing) return Promise.reject(new ClosedError('the kit'))
    try {
      this.session.start()
      return this.#registry.register(options).then((r) => this.#record.noteRegistration(r))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * A live view of `service`'s instances, kept current from the kit's one watch stream; in another registry
   * dialect than etcd's with `{ dialect }` (see docs/POLYGLOT.md).
   */
  discover(service: string, options?: DiscoverOptions): Discovery {
    if (this.#closing) throw new ClosedError('the kit')
    const name = checkServiceName(service)
    if (options === undefined) return this.#discovery.open(this.#reader(name, undefined, 'any'))
    if (!isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid discover options ${show(options)}`)
    checkKeys(options, ['dialect', 'protocol'], 'discover')
    const { protocol } = options
    if (protocol !== undefined && protocol !== 'http' && protocol !== 'grpc')
      throw new InvalidArgumentError(`invalid discover protocol ${show(protocol)}: expected "http" or "grpc"`)
    return this.#discovery.open(this.#reader(name, options.dialect, protocol ?? 'any'))
  }

  #reader(service: string, dialect: unknown, purpose: 'any' | 'http' | 'grpc') {
    return bindReader(dialect, service, { registryPrefix: this.registryPrefix }, purpose)
  }

  /**
   * Every service in the registry and its instances, as one live view on one watch (for tools: the CLI and
   * console use it). `service` narrows it to one service, in any dialect (go-zero, whose keys have no
   * common root, only so). Each call opens a new view; close it when done.
   */
  catalog(options?: { dialect?: DialectName; service?: string }): Catalog {
    if (this.#closing) throw new ClosedError('the kit')
    if (options !== undefined) {
      if (!isPlainObject(options as unknown))
        throw new InvalidArgumentError(`invalid catalog options ${show(options)}`)
      checkKeys(options, ['dialect', 'service'], 'catalog')
    }
    const service = options?.service === undefined ? undefined : checkServiceName(options.service)
    const dialect = bindCatalog(options?.dialect, { registryPrefix: this.registryPrefix }, service)
    return new Catalog(this.#keyspace, this.#watchHub, this.logger, dialect)
  }

  /**
   * Balanced, circuit-broken HTTP to `service`'s instances (see ServiceClient). One client per service name:
   * later calls return the same client; options may only be given again if they are the same.
   */
  service(service: string, options?: ServiceClientOptions): ServiceClient {
    if (this.#closing) throw new ClosedError('the kit')
    const name = checkServiceName(service)
    // one client per service and dialect: the reader's id names both (and the dialect's read options)
    const reader = this.#reader(
      name,
      isPlainObject(options as unknown) ? options?.dialect : undefined,
      'http',
    )
    const existing = this.#services.get(reader.id)
    if (existing) {
      if (options !== undefined && !isDeepStrictEqual(options, serviceClientOptions(existing)))
        throw new InvalidArgumentError(
          `the service client of ${show(service)} already exists with other options: pass options on the first call only`,
        )
      return existing
    }
    const client = new ServiceClient(this.#discovery.open(reader), options, this.logger, () => {
      if (this.#services.get(reader.id) === client) this.#services.delete(reader.id)
    })
    this.#services.set(reader.id, client)
    return client
  }

  /**
   * A distributed lock on `name`, fair (first come, first served) across processes and compatible with
   * `etcdctl lock {name}` and Go's `concurrency.Mutex`: keys `{name}/{lease hex}` under the kit namespace.
   */
  lock(name: string): Lock {
    if (this.#closing) throw new ClosedError('the kit')
    const lock = this.#locks.lock(name)
    this.session.start()
    return lock
  }

  /**
   * The leader election `name`, compatible with `etcdctl elect {name}` and Go's `concurrency.Election`:
   * keys `{name}/{lease hex}` holding each candidate's proposal. One object per name per kit.
   */
  election(name: string): Election {
    if (this.#closing) throw new ClosedError('the kit')
    const election = this.#elections.election(name)
    this.session.start()
    return election
  }

  /**
   * A snapshot of the kit's health, read without I/O: session and lease (TTL left by the local deadline),
   * watch stream, registrations (written, pending, failing), how current each view and config value is,
   * locks held and waited for, elections led. `ready` is true when every registration is written and
   * every view is current (`reasons` says what is not). `on('health')` reports changes.
   */
  health(): HealthSnapshot {
    return this.#health.snapshot()
  }

  /**
   * Deletes this kit's registrations, releases its locks, stops its watches, revokes its lease and closes the
   * client. Idempotent; always finishes within about 2 x `callTimeout`: what etcd did not delete by then
   * (unreachable, credentials changed, permission revoked) is logged, and the lease is no longer kept alive,
   * so etcd expires it and everything on it after its TTL.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const budget = this.#callTimeout
      await this.#bounded(
        (async () => {
          await this.#registry.close().catch(() => {})
          await Promise.all([...this.#services.values()].map((s) => s.close()))
          await Promise.allSettled([this.#locks.close(), this.#elections.close()])
        })(),
        budget,
        'deleting registrations and releasing locks',
      )
      this.#queues.close()
      this.#discovery.close()
      this.config.close()
      for (const config of this.#prefixConfigs.values()) config.close()
      // stops the keepalive at once, then revokes the lease (one call, bounded here too)
      await this.#bounded(this.session.close(), budget, 'revoking the lease')
      this.#health.close()
      this.#watchHub.close()
      // from a fresh macrotask, after the streams' deferred cancels (see cancelStream)
      await new Promise((resolve) => setImmediate(resolve))
      this.client.close()
      this.#streams.close()
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** What `JSON.stringify(kit)` shows: the settings and state, never credentials. */
  toJSON(): Record<string, unknown> {
    return {
      endpoints: this.endpoints,
      ttl: this.ttl,
      namespace: this.namespace,
      registryPrefix: this.registryPrefix,
      configPrefix: this.configPrefix,
      service: this.serviceName,
      session: this.session.state,
      closed: this.closed,
    }
  }

  /** What `util.inspect(kit)` (and `console.log`) shows: the same as `toJSON()`. */
  [inspect.custom](): string {
    return `EtcdKit ${inspect(this.toJSON())}`
  }

  /** Waits for `work` at most `ms`; past that, logs what is left and moves on (the work goes on unawaited). */
  async #bounded(work: Promise<unknown>, ms: number, what: string): Promise<void> {
    if (!(await settledWithin(work, ms)))
      this.logger.warn(
        { ms },
        `kit.close(): ${what} did not finish in ${ms} ms; going on (the lease expires after its TTL)`,
      )
  }
}

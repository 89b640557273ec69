import { EventEmitter } from 'node:events'
import CircuitBreaker from 'opossum'
import { type Dispatcher, Pool } from 'undici'
import {
  AllEndpointsOpenError,
  ClosedError,
  DeadlineExceededError,
  EtcdKitError,
  InvalidArgumentError,
  NoInstancesError,
  RequestFailedError,
  RetriesExhaustedError,
  show,
} from '../errors.js'
import type { Logger } from '../ops/logger.js'
import {
  endpointAttributes,
  observeBreaker,
  observeCosts,
  recordBudgetExhausted,
  recordHedge,
  recordPick,
  recordRetry,
} from '../ops/metrics.js'
import { checkKeys, checkMs, isPlainObject } from '../validate.js'
import { SmoothWeightedRoundRobin } from './balancer.js'
import type { DialectReadSpec } from './dialects/index.js'
import type { Discovery } from './discovery.js'
import type { Instance } from './instance.js'
import { EndpointLoad, LatencyWindow, LeastLoaded, RetryBudget } from './least-loaded.js'
import { compileSelect, type InstanceSelect } from './select.js'

/** When a breaker opens, and how it recovers. One breaker guards each endpoint (instance address). */
export interface BreakerOptions {
  /** Failure percentage within the rolling window above which the breaker opens. @default 50 */
  errorThresholdPercentage?: number
  /** Calls within the rolling window before the percentage is considered. @default 5 */
  volumeThreshold?: number
  /** How long an open breaker stays open before it lets one probe through (half-open), in ms. @default 5_000 */
  resetTimeout?: number
  /** Length of the rolling statistics window, in ms. @default 10_000 */
  rollingCountTimeout?: number
  /** Buckets the window is divided into (it moves on one bucket at a time). @default 10 */
  rollingCountBuckets?: number
}

/** How a client picks among the selected instances. */
export type BalancerName = 'round-robin' | 'least-loaded'

/** Tuning of `least-loaded` (see docs/SERVICE.md). */
export interface LeastLoadedSettings {
  /** Decay time of the latency estimate, in ms (the same at any request rate). @default 200 */
  decay?: number
  /** How long an instance that joins ramps from 10% to its full weight, in ms. @default 10_000 */
  warmUp?: number
}

/**
 * Hedged requests (idempotent methods with a body that can be sent again only): when no answer came
 * after `after`, the same request goes to another instance; the first answer wins and the other attempt
 * is aborted.
 */
export interface HedgeOptions {
  /** ms without an answer before hedging, or `'p95'`: the client's recent 95th percentile latency. */
  after: number | 'p95'
  /** Hedges per request (each after a further `after`). @default 1 */
  max?: number
  /**
   * Hedges may add at most this fraction of the hedged requests sent in the last 10 s, plus 1/s; they also
   * count in the retry budget. The counts are the client's: a request's own `budget` is checked against
   * every hedge of the client, so it cannot make room of its own. @default 0.1
   */
  budget?: number
}

/**
 * The retry budget (Finagle's, Envoy's): retries and hedges together add at most `ratio` of the requests
 * sent over the last 10 s, plus `minPerSecond`; a retry that does not fit is not sent.
 */
export interface RetryBudgetSettings {
  /** @default 0.2 */
  ratio?: number
  /** @default 10 */
  minPerSecond?: number
}

/**
 * The request header carrying what is left of a request's `deadline` when an attempt is sent: whole
 * milliseconds, e.g. `etcdkit-timeout-ms: 180`. The Fastify and Express integrations read it.
 */
export const DEADLINE_HEADER = 'etcdkit-timeout-ms'

export interface ServiceClientOptions {
  /**
   * The registry dialect the instances are read in (see `DiscoverOptions.dialect`); a Kratos instance is
   * called at its `http://` or `https://` endpoint. @default 'etcd'
   */
  dialect?: DialectReadSpec
  /**
   * `'round-robin'`: smooth weighted round robin. `'least-loaded'`: power of two choices: the instance
   * clearly faster by its peak-EWMA latency, else the one furthest below its weight's share of the recent
   * requests (see docs/SERVICE.md). Both after `select` and `zone`.
   * @default "round-robin"
   */
  balancer?: BalancerName
  /** Tuning of `least-loaded`. */
  leastLoaded?: LeastLoadedSettings
  /** Hedge idempotent requests (per request: `hedge`). @default off */
  hedge?: HedgeOptions
  /** Bounds retries and hedges together; `false` turns the budget off. @default { ratio: 0.2, minPerSecond: 10 } */
  retryBudget?: RetryBudgetSettings | false
  /** Prefer instances whose `metadata.zone` is this; the others are used only when none of these is available. */
  zone?: string
  /**
   * Only these instances get traffic: `{ version: '^1.4.0', tags: ['canary'], zone, metadata }` (all must
   * match) or a predicate. Instances with `weight: 0` never do. @default every instance
   */
  select?: InstanceSelect
  /**
   * Further endpoints a request may try after a failure that is retried (see `request()`); each attempt goes
   * to an endpoint this request has not tried yet. @default 2
   */
  retries?: number
  /**
   * Also retry idempotent requests after a timeout, a malformed response or a 5xx status (the request may
   * have been processed: only for methods where that is harmless). Per request: `retryIdempotent`. @default false
   */
  retryIdempotent?: boolean
  /** Per-endpoint circuit breakers. */
  breaker?: BreakerOptions
  /** Time to establish a connection, in ms. @default 2_000 */
  connectTimeout?: number
  /** Time from sending a request to receiving its response headers, in ms. @default 10_000 */
  headersTimeout?: number
  /** Longest pause between two chunks of a response body, in ms. @default 30_000 */
  bodyTimeout?: number
  /** Further undici `Pool` options for each endpoint's keep-alive pool (`connections`, `pipelining`, ...). */
  pool?: Omit<Pool.Options, 'connectTimeout' | 'headersTimeout' | 'bodyTimeout'>
}

/** undici's request options, without `origin` (the picked endpoint) and `path` (the first argument). */
export interface ServiceRequestOptions extends Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> {
  /** @default "GET" */
  method?: Dispatcher.HttpMethod
  /** Overrides the client's `retryIdempotent` for this request. */
  retryIdempotent?: boolean
  /** Overrides the client's `hedge` for this request; `false`: no hedging. */
  hedge?: HedgeOptions | false
  /**
   * ms within which every attempt together must be answered (and the body read); then the request is
   * aborted with `DeadlineExceededError`. Each attempt carries what is left in the `etcdkit-timeout-ms` header.
   */
  deadline?: number
}

export type BreakerState = 'closed' | 'open' | 'halfOpen'

/** A breaker changed state. */
export interface BreakerEvent {
  service: string
  address: string
  state: BreakerState
}

/** One endpoint's breaker state and its counts over the rolling window. */
export interface EndpointStats {
  address: string
  weight: number
  zone: string | undefined
  state: BreakerState
  /** Calls through the breaker (including rejected ones). */
  fires: number
  successes: number
  failures: number
  /** Calls refused because the breaker was open. */
  rejects: number
  latencyMean: number
  /** `least-loaded` only: the current cost (latency estimate in ms, at least the age of its oldest request in flight). */
  cost?: number
  /** Requests in flight (tracked by `least-loaded` and hedging only, else 0). */
  pending: number
}

export interface ServiceClientEvents {
  /** The instance set changed (also fires when the first list is loaded). */
  change: [instances: readonly Instance[]]
  /** An endpoint's breaker opened, went half-open or closed. */
  breaker: [event: BreakerEvent]
  close: []
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Failures before anything was sent: safe to send again elsewhere, whatever the method. */
const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
])
/** The connection broke before a response arrived: the request may have been processed. */
const RESETS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'UND_ERR_SOCKET'])
/** The endpoint answered too slowly or not in HTTP: its fault, but the request may have been processed. */
const FAULTS = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_HEADERS_OVERFLOW',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_INFO',
])
/** The breaker refused the call (open, or its half-open probe is taken) or is shut down: try elsewhere. */
const BREAKER_REFUSALS = new Set(['EOPENBREAKER', 'ESHUTDOWN', 'ESEMLOCKED'])

type FailureKind = 'connect' | 'reset' | 'fault' | 'refused' | 'caller'

function kindOf(err: unknown): FailureKind {
  if (err instanceof ServerErrorStatus) return 'fault'
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return 'caller'
  if (CONNECT_FAILURES.has(code)) return 'connect'
  if (RESETS.has(code)) return 'reset'
  if (FAULTS.has(code) || code.startsWith('HPE_')) return 'fault'
  if (BREAKER_REFUSALS.has(code) && CircuitBreaker.isOurError(err as Error)) return 'refused'
  return 'caller'
}

/** Carries a 5xx response through the breaker as a failure; the caller still gets the response. */
class ServerErrorStatus extends Error {
  constructor(readonly response: Dispatcher.ResponseData) {
    super(`status ${response.statusCode}`)
  }
}

function failOn5xx(res: Dispatcher.ResponseData): Dispatcher.ResponseData {
  if (res.statusCode >= 500) throw new ServerErrorStatus(res)
  return res
}

/** Bodies that can be sent again on another endpoint. */
function replayable(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array
}

/** How long a closing pool may finish its requests in flight before it is destroyed. */
const POOL_CLOSE_GRACE = 2_000

/** A breaker's action: an HTTP request through the endpoint's pool, or a caller's own call (`call()`). */
type Breaker = CircuitBreaker<[Dispatcher.RequestOptions | undefined, OwnCall?], unknown>
type OwnCall = () => Promise<unknown>

/** One instance address: its breaker and (created on first request) its keep-alive pool. */
class Endpoint {
  instance: Instance
  readonly address: string
  readonly breaker: Breaker
  /** What `least-loaded` knows of it. */
  readonly load = new EndpointLoad()
  /** Its metric attributes, built once. */
  readonly attributes: ReturnType<typeof endpointAttributes>
  #pool: Pool | undefined

  constructor(
    instance: Instance,
    service: string,
    breakerOptions: CircuitBreaker.Options,
    private readonly poolOptions: Pool.Options,
  ) {
    this.instance = instance
    this.address = instance.address
    this.attributes = endpointAttributes(service, instance.address)
    this.breaker = new CircuitBreaker(
      (opts: Dispatcher.RequestOptions | undefined, own?: OwnCall) =>
        own !== undefined ? own() : this.#send(opts!),
      { ...breakerOptions, name: instance.address },
    )
  }

  /** Closed, or half-open with its probe not yet taken. */
  get available(): boolean {
    return this.breaker.closed || this.breaker.pendingClose
  }

  get state(): BreakerState {
    return this.breaker.opened ? 'open' : this.breaker.halfOpen ? 'halfOpen' : 'closed'
  }

  get zone(): string | undefined {
    const zone = this.instance.metadata.zone
    return typeof zone === 'string' ? zone : undefined
  }

  #send(opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
    this.#pool ??= new Pool(
      `${this.instance.metadata.protocol === 'https' ? 'https' : 'http'}://${this.address}`,
      this.poolOptions,
    )
    return this.#pool.request(opts).then(failOn5xx)
  }

  /** Shuts the breaker down (no timers left) and closes the pool, letting requests in flight finish. */
  close(): Promise<void> {
    this.breaker.shutdown()
    const pool = this.#pool
    this.#pool = undefined
    if (!pool) return Promise.resolve()
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(() => resolve(pool.destroy().catch(() => {})), POOL_CLOSE_GRACE)
      timer.unref()
    })
    return Promise.race([pool.close().catch(() => {}), grace]).finally(() => clearTimeout(timer))
  }
}

function checkOptions(options: unknown): ServiceClientOptions {
  if (options === undefined) return {}
  if (!isPlainObject(options)) throw new InvalidArgumentError(`invalid service options ${show(options)}`)
  checkKeys(
    options,
    [
      'dialect',
      'zone',
      'select',
      'balancer',
      'leastLoaded',
      'hedge',
      'retryBudget',
      'retries',
      'retryIdempotent',
      'breaker',
      'connectTimeout',
      'headersTimeout',
      'bodyTimeout',
      'pool',
    ],
    'service client',
  )
  const o = options as ServiceClientOptions
  compileSelect(o.select)
  if (o.zone !== undefined && (typeof o.zone !== 'string' || o.zone === ''))
    throw new InvalidArgumentError(`invalid zone ${show(o.zone)}: expected a non-empty string`)
  if (o.retries !== undefined && (!Number.isInteger(o.retries) || o.retries < 0 || o.retries > 100))
    throw new InvalidArgumentError(`invalid retries ${show(o.retries)}: expected an integer from 0 to 100`)
  if (o.retryIdempotent !== undefined && typeof o.retryIdempotent !== 'boolean')
    throw new InvalidArgumentError(`invalid retryIdempotent ${show(o.retryIdempotent)}: expected a boolean`)
  for (const key of ['connectTimeout', 'headersTimeout', 'bodyTimeout'] as const) {
    if (o[key] !== undefined) checkMs(o[key], key)
  }
  if (o.balancer !== undefined && o.balancer !== 'round-robin' && o.balancer !== 'least-loaded')
    throw new InvalidArgumentError(
      `invalid balancer ${show(o.balancer)}: expected "round-robin" or "least-loaded"`,
    )
  const l = o.leastLoaded
  if (l !== undefined) {
    if (!isPlainObject(l as unknown)) throw new InvalidArgumentError(`invalid leastLoaded ${show(l)}`)
    checkKeys(l, ['decay', 'warmUp'], 'leastLoaded')
    if (l.decay !== undefined) checkMs(l.decay, 'leastLoaded.decay', true)
    if (l.warmUp !== undefined) checkMs(l.warmUp, 'leastLoaded.warmUp')
  }
  if (o.hedge !== undefined) checkHedge(o.hedge, 'hedge')
  const r = o.retryBudget
  if (r !== undefined && r !== false) {
    if (!isPlainObject(r as unknown))
      throw new InvalidArgumentError(
        `invalid retryBudget ${show(r)}: expected { ratio, minPerSecond } or false`,
      )
    checkKeys(r, ['ratio', 'minPerSecond'], 'retryBudget')
    if (r.ratio !== undefined && (typeof r.ratio !== 'number' || !(r.ratio >= 0 && r.ratio <= 10)))
      throw new InvalidArgumentError(
        `invalid retryBudget.ratio ${show(r.ratio)}: expected a number from 0 to 10`,
      )
    const m = r.minPerSecond
    if (m !== undefined && (typeof m !== 'number' || !(m >= 0 && m <= 1_000_000)))
      throw new InvalidArgumentError(`invalid retryBudget.minPerSecond ${show(m)}: expected a number >= 0`)
  }
  if (o.pool !== undefined && !isPlainObject(o.pool as unknown))
    throw new InvalidArgumentError(`invalid pool options ${show(o.pool)}: expected a plain object`)
  const b = o.breaker
  if (b !== undefined) {
    if (!isPlainObject(b as unknown)) throw new InvalidArgumentError(`invalid breaker options ${show(b)}`)
    checkKeys(
      b,
      [
        'errorThresholdPercentage',
        'volumeThreshold',
        'resetTimeout',
        'rollingCountTimeout',
        'rollingCountBuckets',
      ],
      'breaker',
    )
    const p = b.errorThresholdPercentage
    if (p !== undefined && (typeof p !== 'number' || !(p >= 0 && p <= 100)))
      throw new InvalidArgumentError(`invalid breaker.errorThresholdPercentage ${show(p)}: expected 0 to 100`)
    const v = b.volumeThreshold
    if (v !== undefined && (!Number.isInteger(v) || v < 0))
      throw new InvalidArgumentError(`invalid breaker.volumeThreshold ${show(v)}: expected an integer >= 0`)
    if (b.resetTimeout !== undefined) checkMs(b.resetTimeout, 'breaker.resetTimeout', true)
    if (b.rollingCountTimeout !== undefined)
      checkMs(b.rollingCountTimeout, 'breaker.rollingCountTimeout', true)
    const n = b.rollingCountBuckets
    if (n !== undefined && (!Number.isInteger(n) || n < 1))
      throw new InvalidArgumentError(
        `invalid breaker.rollingCountBuckets ${show(n)}: expected an integer >= 1`,
      )
  }
  return o
}

function checkHedge(h: unknown, what: string): HedgeOptions | false {
  if (h === false && what !== 'hedge') return false
  if (!isPlainObject(h))
    throw new InvalidArgumentError(`invalid ${what} ${show(h)}: expected { after: ms | "p95", max, budget }`)
  checkKeys(h, ['after', 'max', 'budget'], what)
  const { after, max, budget } = h as unknown as HedgeOptions
  if (after !== 'p95') checkMs(after, `${what}.after`)
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > 4))
    throw new InvalidArgumentError(`invalid ${what}.max ${show(max)}: expected an integer from 1 to 4`)
  if (budget !== undefined && (typeof budget !== 'number' || !(budget >= 0 && budget <= 1)))
    throw new InvalidArgumentError(`invalid ${what}.budget ${show(budget)}: expected a number from 0 to 1`)
  return h as unknown as HedgeOptions
}

/** A request's deadline: when it passes (`performance.now()` time), and the signal that aborts then. */
interface Deadline {
  ms: number
  at: number
  signal: AbortSignal
}

/** `headers` with `name: value` added, in the form undici was given (object, flat array or pairs). */
function withHeader(headers: unknown, name: string, value: string): Dispatcher.RequestOptions['headers'] {
  if (headers === undefined || headers === null) return { [name]: value }
  if (Array.isArray(headers)) return [...(headers as string[]), name, value]
  if (isPlainObject(headers)) return { ...(headers as Record<string, string>), [name]: value }
  const pairs: [string, string | string[] | undefined][] = [
    ...(headers as Iterable<[string, string | string[] | undefined]>),
  ]
  pairs.push([name, value])
  return pairs
}

let readOptions: (client: ServiceClient) => ServiceClientOptions

/** The options `client` was created with: for the kit, which refuses a second `kit.service()` that differs. */
export function serviceClientOptions(client: ServiceClient): ServiceClientOptions {
  return readOptions(client)
}

/**
 * Balanced, circuit-broken HTTP to the instances of one service (created by `kit.service(name)`).
 *
 * Smooth weighted round robin over the live instances (by `metadata.weight`), preferring `zone` when
 * given; one opossum breaker per endpoint, and an endpoint whose breaker is open is skipped until it goes
 * half-open and lets one probe through; one undici keep-alive pool per endpoint. Endpoints that leave
 * the registry have their breaker shut down and their pool closed.
 */
export class ServiceClient extends EventEmitter<ServiceClientEvents> implements AsyncDisposable {
  readonly service: string
  /** Resolves once the first instance list has been loaded. */
  readonly ready: Promise<void>
  /** The options it was created with (to tell whether another `kit.service()` call agrees). */
  readonly #options: ServiceClientOptions
  static {
    readOptions = (client) => client.#options
  }
  readonly #view: Discovery
  readonly #log: Logger
  readonly #onClose: () => void
  readonly #endpoints = new Map<string, Endpoint>()
  readonly #all = new SmoothWeightedRoundRobin<Endpoint>()
  readonly #local = new SmoothWeightedRoundRobin<Endpoint>()
  /** `least-loaded` only: the balancer, and the selected endpoints of the zone (`#lb.items` has them all). */
  readonly #lb: LeastLoaded<Endpoint> | undefined
  #lbLocal: Endpoint[] = []
  /** Whether attempts are timed and counted in flight (least-loaded, or hedging after the p95). */
  readonly #track: boolean
  readonly #latency = new LatencyWindow()
  readonly #hedge: HedgeOptions | undefined
  readonly #budget: RetryBudget | undefined
  /**
   * The hedges' own budget: one per client, counting every hedged request and every hedge. A request's
   * `hedge.budget` is the ratio checked against these same counts, not a budget of its own (one per value
   * grew without bound, and each new one came with a fresh reserve of hedges).
   */
  readonly #hedgeBudget = new RetryBudget({ ratio: 0.1, minPerSecond: 1 })
  #stopCosts: (() => void) | undefined
  readonly #zone: string | undefined
  readonly #select: (instance: Instance) => boolean
  readonly #retries: number
  readonly #retryIdempotent: boolean
  readonly #breakerOptions: CircuitBreaker.Options
  readonly #poolOptions: Pool.Options
  readonly #bucketMs: number
  /** One bucket-rotation timer for all of this client's breakers, instead of one per breaker. */
  readonly #rotate = new EventEmitter()
  #rotateTimer: NodeJS.Timeout | undefined
  /** The balancers are rebuilt on the next pick after the instance set or a breaker state changed. */
  #dirty = true
  #closing: Promise<void> | undefined
  readonly #isAvailable = (ep: Endpoint) => ep.available
  readonly #onChange = (instances: readonly Instance[]) => this.#sync(instances)
  readonly #onViewClose = () => void this.close()

  /** @internal created by `EtcdKit.service()` */
  constructor(view: Discovery, options: ServiceClientOptions | undefined, log: Logger, onClose: () => void) {
    super()
    this.setMaxListeners(0)
    let o: ServiceClientOptions
    try {
      o = checkOptions(options)
    } catch (err) {
      view.close() // the kit opened it for this client
      throw err
    }
    this.#options = o
    this.service = view.service
    this.#view = view
    this.#log = log
    this.#onClose = onClose
    this.#zone = o.zone
    this.#select = compileSelect(o.select)
    this.#retries = o.retries ?? 2
    this.#retryIdempotent = o.retryIdempotent ?? false
    if (o.balancer === 'least-loaded') {
      this.#lb = new LeastLoaded((ep: Endpoint) => ep.load, o.leastLoaded)
      const lb = this.#lb
      this.#stopCosts = observeCosts(() => {
        const now = performance.now()
        return lb.items.map((ep) => ({ attributes: ep.attributes, cost: lb.cost(ep.load, now) }))
      })
    }
    this.#hedge = o.hedge
    this.#track = this.#lb !== undefined || o.hedge !== undefined
    if (o.retryBudget !== false)
      this.#budget = new RetryBudget({
        ratio: o.retryBudget?.ratio ?? 0.2,
        minPerSecond: o.retryBudget?.minPerSecond ?? 10,
      })
    const b = o.breaker ?? {}
    const rollingCountTimeout = b.rollingCountTimeout ?? 10_000
    const rollingCountBuckets = b.rollingCountBuckets ?? 10
    this.#bucketMs = rollingCountTimeout / rollingCountBuckets
    this.#breakerOptions = {
      // undici's timeouts do this job; opossum's per-call timer costs about a quarter of the throughput
      timeout: false,
      enableSnapshots: false,
      rollingPercentilesEnabled: false,
      rotateBucketController: this.#rotate,
      errorThresholdPercentage: b.errorThresholdPercentage ?? 50,
      volumeThreshold: b.volumeThreshold ?? 5,
      resetTimeout: b.resetTimeout ?? 5_000,
      rollingCountTimeout,
      rollingCountBuckets,
      // only the endpoint's faults count against it: not the caller's aborts or bad arguments. A call()
      // is the caller's own transport: whatever it throws counts
      errorFilter: (err: unknown, ...args: unknown[]) => {
        if (args[1] !== undefined) return false
        const kind = kindOf(err)
        return kind === 'caller' || kind === 'refused'
      },
    }
    this.#poolOptions = {
      ...o.pool,
      connectTimeout: o.connectTimeout ?? 2_000,
      headersTimeout: o.headersTimeout ?? 10_000,
      bodyTimeout: o.bodyTimeout ?? 30_000,
    }
    this.ready = view.ready
    view.on('change', this.#onChange)
    view.once('close', this.#onViewClose)
    if (view.loaded) this.#sync(view.instances)
  }

  /** The current instances (all of them, whatever their breakers' state). */
  get instances(): readonly Instance[] {
    return this.#view.instances
  }

  get closed(): boolean {
    return this.#closing !== undefined
  }

  /**
   * The next instance in the weighted rotation whose breaker is not open, for callers with a transport of
   * their own. Throws at once when there is none: `NoInstancesError` (none registered, or the list is not
   * loaded yet: await `ready`) or `AllEndpointsOpenError`.
   */
  pick(): Instance {
    if (this.#closing) throw new ClosedError(`the service client of ${JSON.stringify(this.service)}`)
    const ep = this.#choose(this.#isAvailable)
    if (ep === undefined) throw this.#unavailable()
    return ep.instance
  }

  /**
   * Runs `fn` with the next instance (as `pick()` chooses it) through that endpoint's circuit breaker, for a
   * transport of your own: whatever `fn` throws or rejects with counts against the endpoint (enough failures
   * open its breaker, and it is skipped until a half-open probe succeeds); a result counts for it. `fn`'s
   * result and error come back unchanged; nothing is retried. Throws as `pick()` does when no instance
   * is available. With `least-loaded`, the call counts as in flight on the instance while it runs, and its
   * time (a failure as a slow answer) feeds the instance's latency estimate.
   */
  call<T>(fn: (instance: Instance) => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function')
      return Promise.reject(new InvalidArgumentError(`call() expects a function, got ${show(fn)}`))
    if (this.#closing)
      return Promise.reject(new ClosedError(`the service client of ${JSON.stringify(this.service)}`))
    if (!this.#view.loaded) return this.ready.then(() => this.call(fn))
    const ep = this.#choose(this.#isAvailable)
    if (ep === undefined) return Promise.reject(this.#unavailable())
    const instance = ep.instance
    const done = ep.breaker.fire(undefined, async () => fn(instance)) as Promise<T>
    const lb = this.#lb
    if (lb === undefined) return done
    // least-loaded learns from these calls too: in flight while they run, their time when they end
    const load = ep.load
    const started = performance.now()
    lb.started(load, started)
    return done.then(
      (value) => {
        const now = performance.now()
        lb.finished(load, now - started, now)
        return value
      },
      (err: unknown) => {
        const now = performance.now()
        if (kindOf(err) === 'refused') lb.dropped(load, started)
        else lb.finished(load, now - started, now, true)
        throw err
      },
    )
  }

  /**
   * Sends an HTTP request to the next instance and returns undici's response; consume or dump its body.
   *
   * Retries (up to `retries`, each on an endpoint not yet tried, only with a body that can be sent again):
   * a connection that could not be made, for any method; a connection broken before the response, for
   * idempotent methods (or `idempotent: true`); and, only when `retryIdempotent` is on, timeouts and 5xx
   * responses of idempotent requests. A 5xx counts against the endpoint's breaker; when it is not retried
   * it is returned as it is. Errors: `NoInstancesError`, `AllEndpointsOpenError`, `RetriesExhaustedError`,
   * `RequestFailedError` (a failure that is not retried); the caller's own abort is rethrown unchanged.
   */
  request(path: string, options: ServiceRequestOptions = {}): Promise<Dispatcher.ResponseData> {
    // an absolute URL would be sent as an absolute-form target (another host, through this connection)
    if (typeof path !== 'string' || !path.startsWith('/'))
      return Promise.reject(
        new InvalidArgumentError(
          `invalid request path ${show(path)} for service ${show(this.service)}: expected a string starting with "/"`,
        ),
      )
    if (!isPlainObject(options as unknown))
      return Promise.reject(
        new InvalidArgumentError(
          `invalid request options ${show(options)} for service ${show(this.service)}`,
        ),
      )
    if (this.#closing)
      return Promise.reject(new ClosedError(`the service client of ${JSON.stringify(this.service)}`))
    if (!this.#view.loaded) return this.ready.then(() => this.request(path, options))
    const hedge = options.hedge === undefined ? this.#hedge : options.hedge
    if (hedge || options.deadline !== undefined || options.hedge !== undefined) {
      try {
        if (options.hedge !== undefined) checkHedge(options.hedge, 'request hedge')
        if (options.deadline !== undefined) checkMs(options.deadline, 'deadline', true)
      } catch (err) {
        return Promise.reject(err)
      }
      return this.#requestWith(path, options, hedge || undefined)
    }
    // the first attempt stays off the retry path: no async frame, no try/catch, one extra promise at most
    this.#budget?.deposit(performance.now())
    const ep = this.#choose(this.#isAvailable)
    if (ep === undefined) return Promise.reject(this.#unavailable())
    const opts: Dispatcher.RequestOptions = { ...options, path, method: options.method ?? 'GET' }
    return this.#fire(ep, opts).catch((err: unknown) => this.#retry(err, ep, opts, options, undefined))
  }

  /** A request with a deadline or hedging. */
  #requestWith(
    path: string,
    options: ServiceRequestOptions,
    hedge: HedgeOptions | undefined,
  ): Promise<Dispatcher.ResponseData> {
    const now = performance.now()
    const { hedge: _hedge, deadline: ms, ...rest } = options
    const opts: Dispatcher.RequestOptions = { ...rest, path, method: options.method ?? 'GET' }
    let deadline: Deadline | undefined
    if (ms !== undefined) {
      const timeout = AbortSignal.timeout(ms)
      deadline = { ms, at: now + ms, signal: timeout }
      opts.signal = options.signal ? AbortSignal.any([options.signal as AbortSignal, timeout]) : timeout
    }
    const idempotent = options.idempotent ?? IDEMPOTENT.has(opts.method)
    this.#budget?.deposit(now)
    if (hedge === undefined || !idempotent || !replayable(options.body)) {
      const ep = this.#choose(this.#isAvailable)
      if (ep === undefined) return Promise.reject(this.#unavailable())
      this.#stamp(opts, options, deadline)
      return this.#fire(ep, opts).catch((err: unknown) => this.#retry(err, ep, opts, options, deadline))
    }
    return this.#hedged(opts, options, hedge, deadline, now)
  }

  /** Sets the deadline header of an attempt to what is left. */
  #stamp(opts: Dispatcher.RequestOptions, options: ServiceRequestOptions, deadline: Deadline | undefined) {
    if (deadline === undefined) return
    const left = Math.max(0, Math.floor(deadline.at - performance.now()))
    opts.headers = withHeader(options.headers, DEADLINE_HEADER, String(left))
  }

  /**
   * The first attempt, then (while no answer came, up to `max`, each after `after` ms, within the budgets)
   * the same request to another endpoint; the first answer wins and the other attempts are aborted.
   * Each attempt retries as a plain request does. Fails with the first attempt's error when all failed.
   */
  #hedged(
    opts: Dispatcher.RequestOptions,
    options: ServiceRequestOptions,
    hedge: HedgeOptions,
    deadline: Deadline | undefined,
    now: number,
  ): Promise<Dispatcher.ResponseData> {
    const hedgeBudget = this.#hedgeBudget
    const ratio = hedge.budget ?? 0.1
    hedgeBudget.deposit(now)
    const first = this.#choose(this.#isAvailable)
    if (first === undefined) return Promise.reject(this.#unavailable())
    const after = hedge.after === 'p95' ? this.#latency.p95 : hedge.after
    const max = hedge.max ?? 1
    const outer = opts.signal as AbortSignal | undefined
    return new Promise((resolve, reject) => {
      const controllers: AbortController[] = []
      const picked = new Set<string>()
      const notPicked = (ep: Endpoint) => ep.available && !picked.has(ep.address)
      let running = 0
      let sent = 0
      let done = false
      let firstError: unknown
      let timer: NodeJS.Timeout | undefined
      const settle = () => {
        done = true
        clearTimeout(timer)
      }
      const launch = (ep: Endpoint, index: number) => {
        const own = new AbortController()
        controllers.push(own)
        picked.add(ep.address)
        const o: Dispatcher.RequestOptions = {
          ...opts,
          signal: outer ? AbortSignal.any([outer, own.signal]) : own.signal,
        }
        this.#stamp(o, options, deadline)
        running++
        this.#fire(ep, o)
          .catch((err: unknown) => this.#retry(err, ep, o, options, deadline))
          .then(
            (res) => {
              running--
              if (done) {
                res.body.dump().catch(() => {})
                return
              }
              settle()
              for (const c of controllers) if (c !== own) c.abort()
              if (index > 0) recordHedge(this.service, 'won')
              resolve(res)
            },
            (err: unknown) => {
              running--
              if (index === 0 || firstError === undefined) firstError = err
              if (done || running > 0) return
              settle()
              reject(firstError)
            },
          )
      }
      // when the next hedge is due (performance.now() time). Node's timers fire up to about 1.5 ms early
      // (they count whole milliseconds of a loop clock read at arming): at a p95 of 6.6 ms a hedge went out
      // after 5.3 ms, before the median answer, and hedged 11% of the requests instead of 5%: the hedge
      // budget (10%) ran out and refused hedges at random, those of requests stuck on a slow instance too.
      // So the timer is checked against the clock, and waits again for what is left
      let due = 0
      const wait = () => {
        timer = setTimeout(onDue, Math.max(1, due - performance.now()))
      }
      const arm = (from: number) => {
        if (!(after >= 0) || sent >= max) return
        due = from + after
        wait()
      }
      const onDue = () => {
        timer = undefined
        if (done || this.#closing) return
        const t = performance.now()
        if (t < due) {
          wait()
          return
        }
        if (!hedgeBudget.available(t, ratio) || (this.#budget !== undefined && !this.#budget.available(t))) {
          recordBudgetExhausted(this.service, 'hedge')
          return
        }
        const ep = this.#choose(notPicked)
        if (ep === undefined) return
        hedgeBudget.withdraw(t, ratio)
        this.#budget?.withdraw(t)
        sent++
        recordHedge(this.service, 'sent')
        launch(ep, sent)
        arm(t)
      }
      launch(first, 0)
      arm(now)
    })
  }

  /** Sends one attempt through the endpoint's breaker; times it and counts it in flight when tracking. */
  #fire(ep: Endpoint, opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
    const sent = ep.breaker.fire(opts) as Promise<Dispatcher.ResponseData>
    if (!this.#track) return sent
    const started = performance.now()
    const load = ep.load
    const lb = this.#lb
    lb?.started(load, started)
    return sent.then(
      (res) => {
        const now = performance.now()
        const failed = res.statusCode >= 500
        lb?.finished(load, now - started, now, failed)
        if (!failed) this.#latency.add(now - started)
        return res
      },
      (err: unknown) => {
        const now = performance.now()
        const kind = kindOf(err)
        if (lb === undefined) throw err
        // refused by the breaker: nothing was sent. Abandoned (a hedge won, the caller gave up): it was at
        // least this slow (news only when slower than its estimate). Anything else is the endpoint's failure
        if (kind === 'refused') lb.dropped(load, started)
        else if (kind === 'caller') lb.abandoned(load, now - started, now)
        else lb.finished(load, now - started, now, true)
        throw err
      },
    )
  }

  /**
   * A failure that is not the endpoint's (kind 'caller') as the caller gets it: their own abort unchanged,
   * a request undici refused as `InvalidArgumentError`, anything else as `RequestFailedError`.
   */
  #callerError(
    err: unknown,
    ep: Endpoint,
    options: ServiceRequestOptions,
    deadline: Deadline | undefined,
    tried: readonly string[],
  ): unknown {
    const signal = options.signal as AbortSignal | undefined
    if (signal?.aborted && (err === signal.reason || (err as Error)?.name === 'AbortError')) return err
    if (deadline?.signal.aborted)
      return new DeadlineExceededError(this.service, deadline.ms, [...tried, ep.address])
    if (err instanceof EtcdKitError) return err
    if ((err as { code?: unknown })?.code === 'UND_ERR_INVALID_ARG')
      return new InvalidArgumentError(
        `invalid request to service ${show(this.service)}: ${(err as Error).message}`,
        { cause: err },
      )
    return new RequestFailedError(this.service, ep.address, err)
  }

  /** After a failed attempt: decides whether to try another endpoint, and does, until one answers. */
  async #retry(
    error: unknown,
    endpoint: Endpoint,
    opts: Dispatcher.RequestOptions,
    options: ServiceRequestOptions,
    deadline: Deadline | undefined,
  ): Promise<Dispatcher.ResponseData> {
    const idempotent = options.idempotent ?? IDEMPOTENT.has(opts.method)
    const canResend = replayable(options.body)
    const retryAll = idempotent && canResend && (options.retryIdempotent ?? this.#retryIdempotent)
    const tried: string[] = []
    // addresses this request has picked: its own, since other requests pick the same endpoints meanwhile
    const picked = new Set([endpoint.address])
    const untried = (ep: Endpoint) => ep.available && !picked.has(ep.address)
    let lastError: unknown
    let err = error
    let ep = endpoint
    for (let attempt = 0; ; ) {
      const kind = kindOf(err)
      if (kind === 'caller') throw this.#callerError(err, ep, options, deadline, tried)
      // 'refused': its breaker opened meanwhile, or another request took its half-open probe: not an attempt
      if (kind !== 'refused') {
        tried.push(ep.address)
        lastError = err instanceof ServerErrorStatus ? new Error(`status ${err.response.statusCode}`) : err
        // nothing listens there: no use sending it more until the breaker's reset timeout
        if (kind === 'connect') ep.breaker.open()
        const retryable =
          canResend &&
          (kind === 'connect' || (kind === 'reset' && idempotent) || (kind === 'fault' && retryAll))
        const again = retryable && attempt < this.#retries && this.#spendRetry()
        if (err instanceof ServerErrorStatus) {
          if (!again) return err.response
          await err.response.body.dump().catch(() => {})
        } else if (!retryable) {
          throw new RequestFailedError(this.service, ep.address, err)
        } else if (!again) {
          throw new RetriesExhaustedError(this.service, tried, err)
        }
        attempt++
        recordRetry(this.service, kind)
      }
      if (this.#closing) throw new ClosedError(`the service client of ${JSON.stringify(this.service)}`)
      if (deadline !== undefined && performance.now() >= deadline.at)
        throw new DeadlineExceededError(this.service, deadline.ms, tried)
      const next = this.#choose(untried)
      if (next === undefined) {
        if (tried.length === 0) throw this.#unavailable()
        throw new RetriesExhaustedError(this.service, tried, lastError)
      }
      picked.add(next.address)
      this.#stamp(opts, options, deadline)
      try {
        return await this.#fire(next, opts)
      } catch (e) {
        err = e
        ep = next
      }
    }
  }

  /** Whether the retry budget lets one more retry go (and takes it). */
  #spendRetry(): boolean {
    if (this.#budget === undefined || this.#budget.withdraw(performance.now())) return true
    recordBudgetExhausted(this.service, 'retry')
    return false
  }

  /** Each endpoint's breaker state and rolling counts. */
  endpoints(): EndpointStats[] {
    return [...this.#endpoints.values()].map((ep) => {
      const s = ep.breaker.stats
      return {
        address: ep.address,
        weight: ep.instance.weight,
        zone: ep.zone,
        state: ep.state,
        fires: s.fires,
        successes: s.successes,
        failures: s.failures,
        rejects: s.rejects,
        latencyMean: s.latencyMean,
        cost: this.#lb?.cost(ep.load, performance.now()),
        pending: ep.load.pending,
      }
    })
  }

  /** Closes every endpoint's pool (requests in flight may finish) and shuts down its breaker. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#view.off('change', this.#onChange)
      this.#view.off('close', this.#onViewClose)
      this.#view.close()
      clearInterval(this.#rotateTimer)
      this.#rotateTimer = undefined
      const closing = [...this.#endpoints.values()].map((ep) => ep.close())
      this.#endpoints.clear()
      this.#all.update([], () => 1)
      this.#local.update([], () => 1)
      this.#lb?.update([], () => 1, performance.now())
      this.#lbLocal = []
      this.#stopCosts?.()
      this.#onClose()
      await Promise.all(closing)
      this.emit('close')
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  #choose(accept: (ep: Endpoint) => boolean): Endpoint | undefined {
    if (this.#dirty) this.#rebuild()
    let ep: Endpoint | undefined
    const lb = this.#lb
    if (lb !== undefined) {
      const now = performance.now()
      if (this.#lbLocal.length > 0) ep = lb.next(now, accept, this.#lbLocal)
      ep ??= lb.next(now, accept)
    } else {
      if (this.#zone !== undefined && this.#local.size > 0) ep = this.#local.next(accept)
      ep ??= this.#all.next(accept)
    }
    if (ep !== undefined) recordPick(ep.attributes)
    return ep
  }

  /** Whether an endpoint may get traffic: `weight: 0` drains it; `select` narrows the rest. */
  #selected(ep: Endpoint): boolean {
    return ep.instance.weight > 0 && this.#select(ep.instance)
  }

  /** The rotation holds the selected endpoints whose breaker is not open, in instance (key) order. */
  #rebuild() {
    this.#dirty = false
    const all: Endpoint[] = []
    const local: Endpoint[] = []
    // one address under several keys (go-zero's key changes with its lease; Go writers may repeat an Addr)
    // is one endpoint, in the rotation once
    const seen = new Set<Endpoint>()
    for (const instance of this.#view.instances) {
      const ep = this.#endpoints.get(instance.address)
      if (ep === undefined || seen.has(ep) || ep.breaker.opened || !this.#selected(ep)) continue
      seen.add(ep)
      all.push(ep)
      if (this.#zone !== undefined && ep.zone === this.#zone) local.push(ep)
    }
    if (this.#lb !== undefined) {
      this.#lb.update(all, weightOfEndpoint, performance.now())
      this.#lbLocal = local
      return
    }
    this.#all.update(all, weightOfEndpoint)
    this.#local.update(local, weightOfEndpoint)
  }

  #unavailable(): Error {
    if (!this.#view.loaded)
      return new NoInstancesError(this.service, 'its instance list has not been loaded yet (await ready)')
    if (this.#endpoints.size === 0) return new NoInstancesError(this.service)
    const selected = [...this.#endpoints.values()].filter((ep) => this.#selected(ep)).length
    if (selected === 0)
      return new NoInstancesError(
        this.service,
        `none of its ${this.#endpoints.size} instances is selected (select option, or weight 0)`,
      )
    return new AllEndpointsOpenError(this.service, selected)
  }

  #sync(instances: readonly Instance[]) {
    if (this.#closing) return
    const seen = new Set<string>()
    for (const instance of instances) {
      seen.add(instance.address)
      const ep = this.#endpoints.get(instance.address)
      if (ep) ep.instance = instance
      else this.#endpoints.set(instance.address, this.#createEndpoint(instance))
    }
    for (const [address, ep] of this.#endpoints) {
      if (seen.has(address)) continue
      this.#endpoints.delete(address)
      void ep.close()
    }
    if (this.#endpoints.size === 0) {
      clearInterval(this.#rotateTimer)
      this.#rotateTimer = undefined
    } else if (this.#rotateTimer === undefined) {
      this.#rotateTimer = setInterval(() => this.#rotate.emit('rotate'), this.#bucketMs)
      this.#rotateTimer.unref()
    }
    this.#dirty = true
    this.emit('change', instances)
  }

  #createEndpoint(instance: Instance): Endpoint {
    const ep = new Endpoint(instance, this.service, this.#breakerOptions, this.#poolOptions)
    const report = (state: BreakerState) => () => {
      this.#dirty = true
      if (state !== 'closed')
        this.#log.debug({ service: this.service, address: ep.address, state }, 'breaker')
      this.emit('breaker', { service: this.service, address: ep.address, state })
    }
    ep.breaker.on('open', report('open'))
    ep.breaker.on('halfOpen', report('halfOpen'))
    ep.breaker.on('close', report('closed'))
    observeBreaker(ep.breaker, this.service, ep.address)
    return ep
  }
}

const weightOfEndpoint = (ep: Endpoint) => ep.instance.weight

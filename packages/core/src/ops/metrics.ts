// Every OpenTelemetry instrument of etcdkit, and the one-line helpers the modules record through.
import {
  type Attributes,
  type BatchObservableResult,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type ObservableGauge,
  type ObservableUpDownCounter,
  type UpDownCounter,
  ValueType,
} from '@opentelemetry/api'

/** The instrumentation scope: the meter's name. */
export const METER_NAME = '@etcdkit/core'

/**
 * What the kits of this process report when the SDK collects (observable instruments): filled by
 * each kit from its health snapshot (health.ts), so that collecting costs nothing between collections.
 */
export interface ObservedState {
  /** Registrations by state. */
  registrations: Record<'written' | 'pending' | 'failing', number>
  /** Instances per discovered service. */
  instances: ReadonlyArray<{ service: string; count: number }>
  /** Views (discovery, config) by whether they are known current. */
  views: Record<'current' | 'stale', number>
  /** Seconds since the least current stale view was last known current (0 when none is stale). */
  stalenessSeconds: number
  /** Locks this kit holds and waits for. */
  locks: Record<'held' | 'waiting', number>
  /** Elections this kit leads. */
  leading: number
  /** Seconds left of the session lease by the local deadline (undefined without a lease). */
  leaseSecondsLeft: number | undefined
}

interface Instruments {
  sessions: UpDownCounter
  leaseLosses: Counter
  keepalive: Histogram
  watchResets: Counter
  breakerChanges: Counter
  calls: Histogram
  retries: Counter
  picks: Counter
  hedges: Counter
  budgetExhausted: Counter
  lockWait: Histogram
  lockHold: Histogram
  lockLosses: Counter
  electionChanges: Counter
  configUpdates: Counter
  configRefusals: Counter
}

function create(meter: Meter): Instruments {
  const seconds = (description: string, boundaries: number[]) => ({
    description,
    unit: 's',
    advice: { explicitBucketBoundaries: boundaries },
  })
  const fast = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
  const slow = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600]
  return {
    sessions: meter.createUpDownCounter('etcdkit.session.count', {
      description: 'etcd sessions (one per kit) by state',
      unit: '{session}',
      valueType: ValueType.INT,
    }),
    leaseLosses: meter.createCounter('etcdkit.session.lease.losses', {
      description: 'Session leases lost (etcd expired them, or their TTL ran out on the local clock)',
      unit: '{lease}',
      valueType: ValueType.INT,
    }),
    keepalive: meter.createHistogram(
      'etcdkit.session.keepalive.duration',
      seconds('Round trip of a lease keepalive, from sending it to its answer', fast),
    ),
    watchResets: meter.createCounter('etcdkit.watch.resets', {
      description:
        'Watches that could not go on (compacted, cancelled by etcd, etcd wiped) and were read again',
      unit: '{reset}',
      valueType: ValueType.INT,
    }),
    breakerChanges: meter.createCounter('etcdkit.client.breaker.state_changes', {
      description: "Changes of an endpoint's circuit breaker state (to the state in etcdkit.breaker.state)",
      unit: '{change}',
      valueType: ValueType.INT,
    }),
    calls: meter.createHistogram(
      'etcdkit.client.request.duration',
      seconds('Calls through an endpoint breaker, by outcome (request() attempts and call())', fast),
    ),
    retries: meter.createCounter('etcdkit.client.retries', {
      description: 'Requests sent again to another endpoint after a failure',
      unit: '{retry}',
      valueType: ValueType.INT,
    }),
    picks: meter.createCounter('etcdkit.client.picks', {
      description: 'Endpoints picked by the balancer (first attempts, retries, hedges, pick() and call())',
      unit: '{pick}',
      valueType: ValueType.INT,
    }),
    hedges: meter.createCounter('etcdkit.client.hedges', {
      description:
        'Hedged requests sent, and those whose answer came first (etcdkit.hedge.outcome: sent, won)',
      unit: '{hedge}',
      valueType: ValueType.INT,
    }),
    budgetExhausted: meter.createCounter('etcdkit.client.budget.exhausted', {
      description:
        'Retries or hedges not sent because the budget was spent (etcdkit.budget.kind: retry, hedge)',
      unit: '{attempt}',
      valueType: ValueType.INT,
    }),
    lockWait: meter.createHistogram(
      'etcdkit.lock.wait.duration',
      seconds('Time from acquire() or campaign() to its outcome', slow),
    ),
    lockHold: meter.createHistogram(
      'etcdkit.lock.hold.duration',
      seconds('Time a lock or leadership was held, until released or lost', slow),
    ),
    lockLosses: meter.createCounter('etcdkit.lock.losses', {
      description: 'Locks and leaderships lost while held (lease lost or key deleted)',
      unit: '{loss}',
      valueType: ValueType.INT,
    }),
    electionChanges: meter.createCounter('etcdkit.election.changes', {
      description: "This kit's leadership changes: elected, resigned, lost",
      unit: '{change}',
      valueType: ValueType.INT,
    }),
    configUpdates: meter.createCounter('etcdkit.config.updates', {
      description: 'Config values that took a new value from etcd',
      unit: '{update}',
      valueType: ValueType.INT,
    }),
    configRefusals: meter.createCounter('etcdkit.config.refusals', {
      description: 'Config texts refused by parse or validate (the last good value stays)',
      unit: '{refusal}',
      valueType: ValueType.INT,
    }),
  }
}

interface Observables {
  registrations: ObservableUpDownCounter
  instances: ObservableUpDownCounter
  views: ObservableUpDownCounter
  staleness: ObservableGauge
  locks: ObservableUpDownCounter
  leading: ObservableUpDownCounter
  leaseLeft: ObservableGauge
  endpointCost: ObservableGauge
}

function createObservables(meter: Meter): Observables {
  const int = { valueType: ValueType.INT }
  const o: Observables = {
    registrations: meter.createObservableUpDownCounter('etcdkit.registration.count', {
      ...int,
      description: "This process's registrations by state (written, pending, failing)",
      unit: '{registration}',
    }),
    instances: meter.createObservableUpDownCounter('etcdkit.discovery.instances', {
      ...int,
      description: 'Instances of each discovered service, as the live view sees them',
      unit: '{instance}',
    }),
    views: meter.createObservableUpDownCounter('etcdkit.view.count', {
      ...int,
      description: 'Discovery views and config values by whether they are known current',
      unit: '{view}',
    }),
    staleness: meter.createObservableGauge('etcdkit.view.staleness', {
      description: 'Seconds since the least current view was last known current (0: all current)',
      unit: 's',
    }),
    locks: meter.createObservableUpDownCounter('etcdkit.lock.count', {
      ...int,
      description: 'Locks this process holds or waits for',
      unit: '{lock}',
    }),
    leading: meter.createObservableUpDownCounter('etcdkit.election.leading', {
      ...int,
      description: 'Elections this process leads',
      unit: '{election}',
    }),
    leaseLeft: meter.createObservableGauge('etcdkit.session.lease.time_left', {
      description: 'Seconds until etcd may expire the session lease, by the local deadline',
      unit: 's',
    }),
    endpointCost: meter.createObservableGauge('etcdkit.client.endpoint.cost', {
      description:
        "A least-loaded client's cost of each endpoint: its latency estimate (ms), at least the age of its oldest request in flight",
      unit: '{cost}',
    }),
  }
  meter.addBatchObservableCallback(observe, Object.values(o))
  return o
}

/** The live kits' observed state, read when the SDK collects. */
const sources = new Set<() => ObservedState>()
let provider: MeterProvider | undefined
let instruments: Instruments = create(metrics.getMeterProvider().getMeter(METER_NAME))
let observables: Observables | undefined

/**
 * Binds the instruments to the global meter provider if it changed (called by every new kit): the API
 * hands out no-op instruments until an SDK registers, and an app may register it after importing us.
 */
export function bindMeterProvider() {
  const p = metrics.getMeterProvider()
  if (p === provider) return
  provider = p
  const meter = p.getMeter(METER_NAME)
  instruments = create(meter)
  observables = createObservables(meter)
}

/** Reports a kit's state at each collection until the returned function is called. */
export function observeKit(source: () => ObservedState): () => void {
  sources.add(source)
  return () => sources.delete(source)
}

function observe(result: BatchObservableResult) {
  const o = observables
  if (!o) return
  const sum = {
    registrations: { written: 0, pending: 0, failing: 0 },
    instances: new Map<string, number>(),
    views: { current: 0, stale: 0 },
    staleness: 0,
    locks: { held: 0, waiting: 0 },
    leading: 0,
  }
  let leaseLeft: number | undefined
  for (const source of sources) {
    const s = source()
    for (const k of ['written', 'pending', 'failing'] as const) sum.registrations[k] += s.registrations[k]
    for (const { service, count } of s.instances)
      sum.instances.set(service, (sum.instances.get(service) ?? 0) + count)
    sum.views.current += s.views.current
    sum.views.stale += s.views.stale
    sum.staleness = Math.max(sum.staleness, s.stalenessSeconds)
    sum.locks.held += s.locks.held
    sum.locks.waiting += s.locks.waiting
    sum.leading += s.leading
    if (s.leaseSecondsLeft !== undefined)
      leaseLeft = leaseLeft === undefined ? s.leaseSecondsLeft : Math.min(leaseLeft, s.leaseSecondsLeft)
  }
  for (const [state, n] of Object.entries(sum.registrations))
    result.observe(o.registrations, n, { 'etcdkit.registration.state': state })
  for (const [service, n] of sum.instances) result.observe(o.instances, n, { 'etcdkit.service': service })
  for (const [state, n] of Object.entries(sum.views))
    result.observe(o.views, n, { 'etcdkit.view.state': state })
  result.observe(o.staleness, sum.staleness)
  for (const [state, n] of Object.entries(sum.locks))
    result.observe(o.locks, n, { 'etcdkit.lock.state': state })
  result.observe(o.leading, sum.leading)
  if (leaseLeft !== undefined) result.observe(o.leaseLeft, leaseLeft)
  for (const source of costSources)
    for (const { attributes, cost } of source()) result.observe(o.endpointCost, cost, attributes)
}

/** The least-loaded clients' endpoint costs, read when the SDK collects. */
const costSources = new Set<() => Iterable<{ attributes: Attributes; cost: number }>>()

/** Reports a client's endpoint costs at each collection until the returned function is called. */
export function observeCosts(source: () => Iterable<{ attributes: Attributes; cost: number }>): () => void {
  costSources.add(source)
  return () => costSources.delete(source)
}

// --- one-line recording helpers, called at the sources ---

const stateAttrs = new Map<string, Attributes>()
const stateOf = (state: string) => {
  let a = stateAttrs.get(state)
  if (!a) {
    a = { 'etcdkit.session.state': state }
    stateAttrs.set(state, a)
  }
  return a
}

/** A session moved from `from` to `to` (`undefined`: created); a closed session is no longer counted. */
export function recordSessionState(from: string | undefined, to: string) {
  if (from !== undefined) instruments.sessions.add(-1, stateOf(from))
  if (to !== 'closed') instruments.sessions.add(1, stateOf(to))
}

/** A lease was lost; `reason` is the session's own wording, reduced here to a bounded attribute. */
export function recordLeaseLoss(reason: string) {
  const kind = /keepalive answer|TTL/.test(reason)
    ? 'deadline'
    : /expired|not found/.test(reason)
      ? 'expired'
      : 'other'
  instruments.leaseLosses.add(1, { 'etcdkit.lease.loss.reason': kind })
}

/** A keepalive was answered `ms` after it was sent. */
export function recordKeepalive(ms: number) {
  instruments.keepalive.record(ms / 1000)
}

/** A watch was reset; `reason` is the hub's wording, reduced to a bounded attribute. */
export function recordWatchReset(reason: string) {
  const kind = /compact/.test(reason)
    ? 'compacted'
    : /went back|wiped/.test(reason)
      ? 'regressed'
      : 'cancelled'
  instruments.watchResets.add(1, { 'etcdkit.watch.reset.reason': kind })
}

/** A request was sent again to another endpoint after a failure of kind `kind`. */
export function recordRetry(service: string, kind: string) {
  instruments.retries.add(1, { 'etcdkit.service': service, 'error.type': kind })
}

/** An endpoint was picked; `attributes` are the endpoint's own (service, address, port), built once. */
export function recordPick(attributes: Attributes) {
  instruments.picks.add(1, attributes)
}

/** A hedge was sent, or its answer came first. */
export function recordHedge(service: string, outcome: 'sent' | 'won') {
  instruments.hedges.add(1, { 'etcdkit.service': service, 'etcdkit.hedge.outcome': outcome })
}

/** A retry or a hedge was not sent: the budget is spent. */
export function recordBudgetExhausted(service: string, kind: 'retry' | 'hedge') {
  instruments.budgetExhausted.add(1, { 'etcdkit.service': service, 'etcdkit.budget.kind': kind })
}

/** The attributes that name an endpoint (service, host, port). */
export function endpointAttributes(service: string, address: string): Attributes {
  const at = address.lastIndexOf(':')
  return {
    'etcdkit.service': service,
    'server.address': address.slice(0, at).replace(/^\[|\]$/g, ''),
    'server.port': Number(address.slice(at + 1)),
  }
}

interface BreakerLike {
  on(event: 'success' | 'failure', listener: (result: unknown, latencyMs: number) => void): unknown
  on(event: 'reject' | 'open' | 'halfOpen' | 'close', listener: () => void): unknown
}

/**
 * Counts an endpoint's calls by outcome and its breaker's state changes. Attributes are built once per
 * endpoint (service + endpoint only: bounded), so a call costs one no-op call without an SDK.
 */
export function observeBreaker(breaker: BreakerLike, service: string, address: string) {
  const base = endpointAttributes(service, address)
  const outcome = (o: string) => ({ ...base, 'etcdkit.call.outcome': o })
  const success = outcome('success')
  const failure = outcome('failure')
  // an error the breaker does not count against the endpoint (the caller's own abort or bad argument)
  const ignored = outcome('ignored')
  const rejected = outcome('rejected')
  breaker.on('success', (result, ms) =>
    instruments.calls.record(ms / 1000, result instanceof Error ? ignored : success),
  )
  breaker.on('failure', (_err, ms) => instruments.calls.record(ms / 1000, failure))
  breaker.on('reject', () => instruments.calls.record(0, rejected))
  for (const state of ['open', 'halfOpen', 'close'] as const) {
    const attrs = { ...base, 'etcdkit.breaker.state': state === 'close' ? 'closed' : state }
    breaker.on(state, () => instruments.breakerChanges.add(1, attrs))
  }
}

/** A wait for a lock (`kind` lock) or a leadership (`kind` election) ended with `outcome`. */
export function recordWait(kind: 'lock' | 'election', name: string, ms: number, outcome: string) {
  instruments.lockWait.record(ms / 1000, {
    'etcdkit.lock.kind': kind,
    'etcdkit.lock.name': name,
    'etcdkit.lock.outcome': outcome,
  })
}

/** A lock or leadership held for `ms` ended: `released` (or resigned) or `lost`. */
export function recordHold(kind: 'lock' | 'election', name: string, ms: number, end: 'released' | 'lost') {
  const attrs = { 'etcdkit.lock.kind': kind, 'etcdkit.lock.name': name }
  instruments.lockHold.record(ms / 1000, { ...attrs, 'etcdkit.lock.end': end })
  if (end === 'lost') instruments.lockLosses.add(1, attrs)
}

/** This kit's leadership of election `name` changed. */
export function recordElection(name: string, change: 'elected' | 'resigned' | 'lost') {
  instruments.electionChanges.add(1, { 'etcdkit.election.name': name, 'etcdkit.election.change': change })
}

/** Config value `key` (prefix-relative) took a new value. */
export function recordConfigUpdate(key: string) {
  instruments.configUpdates.add(1, { 'etcdkit.config.key': key })
}

/** The text of config value `key` was refused. */
export function recordConfigRefusal(key: string) {
  instruments.configRefusals.add(1, { 'etcdkit.config.key': key })
}

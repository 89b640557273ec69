// kit.health(): one typed snapshot of everything an operator asks "is it working?" about, and readiness.
import type { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { OwnQueueState } from '../coordination/lock-activity.js'
import type { Freshness } from '../etcd/follow.js'
import type { Session, SessionState } from '../etcd/session.js'
import type { WatchHub } from '../etcd/watch.js'
import type { DialectName } from '../registry/dialects/index.js'
import { type ObservedState, observeKit } from './metrics.js'
import type { SessionRecord } from './session-record.js'

/** One registration of this kit. */
export interface RegistrationHealth {
  service: string
  address: string
  /** The registry key (kit-relative). */
  key: string
  /**
   * `written`: the key is in etcd on the current lease; `pending`: it is being written (first write, or
   * again on a new lease); `failing`: the last write attempt failed (`lastError` says why) and it is retried.
   */
  state: 'written' | 'pending' | 'failing'
  /** The message of the last failed write, while `failing`. */
  lastError?: string
  /**
   * Every key the registration holds, one per dialect, in the order of its `dialects`: each is `written`
   * while it is in etcd on the current lease as far as the kit knows; a key deleted by someone else is
   * `pending` (or `failing`) until the kit has written it again, while the others stay `written`.
   */
  keys: RegistrationKeyHealth[]
}

/** One key of a registration: the dialect it is written in, and its own state. */
export interface RegistrationKeyHealth {
  dialect: DialectName
  /** The registry key (kit-relative). */
  key: string
  state: RegistrationHealth['state']
  /** The message of the last failed write, while `failing`. */
  lastError?: string
}

/** How current a live view of etcd is (a discovery view, a config value). */
export interface ViewHealth {
  /** `discovery` (a service's instances) or `config` (a config value). */
  kind: 'discovery' | 'config'
  /** The service name, or the config key. */
  name: string
  /** The registry dialect a discovery view reads (discovery only). */
  dialect?: DialectName
  /** Whether the first read is done. */
  loaded: boolean
  /** Whether the view is known current: read, and its watch confirmed on a live watch stream. */
  current: boolean
  /** The etcd revision it reflects (decimal), when known. */
  revision?: string
  /** Milliseconds since it was last known current (0 while current), when known. */
  staleForMs?: number
  /** Instances in the view (discovery only). */
  instances?: number
}

/** One etcd endpoint, as the kit's streams found it. */
export interface EndpointHealth {
  endpoint: string
  /** The streams on it now: the session's keepalive stream, the watch stream. */
  streams: Array<'keepalive' | 'watch'>
  /** Milliseconds since a stream on it last broke or went silent, if one did. */
  failedMsAgo?: number
}

/** A snapshot of one kit: `ready` says whether the instance should receive traffic. */
export interface HealthSnapshot {
  /** Registrations written and every view current (see `reasons` when not). */
  ready: boolean
  /** Why the kit is not ready, one short sentence each; empty when ready. */
  reasons: string[]
  /** When the snapshot was taken (ISO 8601). */
  at: string
  session: {
    state: SessionState
    /** Whether anything (a registration, a lock, an election) started the session. */
    started: boolean
    /** The current lease: id (decimal), hex, granted TTL (s), and ms left by the local deadline. */
    lease: { id: string; hex: string; ttl: number; ttlLeftMs: number } | null
  }
  /**
   * The etcd endpoints the kit was given: which carries the session's keepalive stream and the watch
   * stream now, and how long ago a stream on it last broke or went silent (when it did).
   */
  endpoints: EndpointHealth[]
  watch: {
    /** `open`: the kit's watch stream is up; `connecting`: being (re)opened; `idle`: nothing to watch. */
    state: 'open' | 'connecting' | 'idle'
    /** Watches multiplexed on it. */
    watches: number
    /** Streams opened over the kit's life (each reconnect opens one). */
    streamsOpened: number
    /** Milliseconds since etcd last sent anything on the open stream. */
    lastHeardMsAgo?: number
  }
  registrations: RegistrationHealth[]
  views: ViewHealth[]
  locks: { held: OwnQueueState[]; waiting: OwnQueueState[] }
  elections: { leading: OwnQueueState[]; campaigning: OwnQueueState[] }
  /** This kit's session record (what `holders()` shows others about this process). */
  record: Readonly<SessionRecord>
}

/** What the health snapshot is read from: the kit's parts, each asked without I/O. */
export interface HealthSources {
  session: Session
  endpoints: readonly string[]
  /** When a stream on each endpoint last failed (`performance.now()` ms). */
  streamFailures: () => ReadonlyMap<string, number>
  watchHub: WatchHub
  registrations: () => RegistrationHealth[]
  views: () => ViewHealth[]
  locks: () => OwnQueueState[]
  elections: () => OwnQueueState[]
  record: () => Readonly<SessionRecord>
}

/** How often a kit with `health` listeners compares its state with the last one it reported. */
const CHECK_EVERY_MS = 250

/**
 * Builds snapshots and, while somebody listens to `health`, reports each change of what matters (readiness,
 * session state, registration states, view currency, locks and leaderships held): at once on a session
 * state change, else within a quarter of a second.
 */
export class HealthMonitor {
  readonly #sources: HealthSources
  readonly #emit: (snapshot: HealthSnapshot) => void
  readonly #unobserve: () => void
  #timer: NodeJS.Timeout | undefined
  #last: string | undefined
  readonly #onSession = () => this.#check()

  constructor(sources: HealthSources, emitter: EventEmitter, emit: (snapshot: HealthSnapshot) => void) {
    this.#sources = sources
    this.#emit = emit
    this.#unobserve = observeKit(() => this.#observed())
    emitter.on('newListener', (event: string) => {
      if (event === 'health') queueMicrotask(() => this.#watch(emitter))
    })
    emitter.on('removeListener', (event: string) => {
      if (event === 'health') this.#watch(emitter)
    })
  }

  snapshot(): HealthSnapshot {
    const s = this.#sources
    const session = s.session
    const lease = session.lease
    const registrations = s.registrations()
    const views = s.views()
    const own = s.locks()
    const campaigns = s.elections()
    const reasons: string[] = []
    if (session.state === 'closed') reasons.push('the kit is closed')
    else if (s.session.started && session.state !== 'alive' && session.state !== 'suspect')
      reasons.push(`the etcd session is ${session.state}`)
    for (const r of registrations) {
      if (r.state === 'written') continue
      // name the keys that are not written (one dialect's key deleted by someone else), else the registration
      const keys = r.keys.filter((k) => k.state !== 'written')
      if (keys.length === 0) reasons.push(`registration ${r.key} is ${r.state}`)
      for (const k of keys) reasons.push(`registration ${k.key} (${k.dialect}) is ${k.state}`)
    }
    for (const v of views)
      if (!v.current) reasons.push(`${v.kind} view ${JSON.stringify(v.name)} is not current`)
    return {
      ready: reasons.length === 0,
      reasons,
      at: new Date().toISOString(),
      session: {
        state: session.state,
        started: session.started,
        lease: lease
          ? {
              id: lease.id,
              hex: lease.hex,
              ttl: lease.ttl,
              ttlLeftMs: Math.max(0, Math.round(lease.deadline - performance.now())),
            }
          : null,
      },
      endpoints: this.#endpoints(),
      watch: this.#watchState(),
      registrations,
      views,
      locks: {
        held: own.filter((l) => l.state === 'held'),
        waiting: own.filter((l) => l.state === 'waiting'),
      },
      elections: {
        leading: campaigns.filter((e) => e.state === 'held'),
        campaigning: campaigns.filter((e) => e.state === 'waiting'),
      },
      record: s.record(),
    }
  }

  #endpoints(): EndpointHealth[] {
    const { session, watchHub, endpoints } = this.#sources
    const failures = this.#sources.streamFailures()
    const watch = watchHub.health.endpoint
    const now = performance.now()
    return endpoints.map((endpoint) => {
      const streams: EndpointHealth['streams'] = []
      if (session.endpoint === endpoint) streams.push('keepalive')
      if (watch === endpoint) streams.push('watch')
      const failed = failures.get(endpoint)
      return { endpoint, streams, ...(failed === undefined ? {} : { failedMsAgo: Math.round(now - failed) }) }
    })
  }

  #watchState(): HealthSnapshot['watch'] {
    const hub = this.#sources.watchHub
    const heard = hub.health.lastHeardAt
    return {
      state: hub.state,
      watches: hub.size,
      streamsOpened: hub.streamsOpened,
      ...(heard === undefined ? {} : { lastHeardMsAgo: Math.round(performance.now() - heard) }),
    }
  }

  /** Stops reporting (the kit is closed). */
  close() {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#sources.session.off('state', this.#onSession)
    this.#unobserve()
  }

  #watch(emitter: EventEmitter) {
    const listening = emitter.listenerCount('health') > 0
    if (listening && this.#timer === undefined && this.#sources.session.state !== 'closed') {
      this.#last = signature(this.snapshot())
      this.#sources.session.on('state', this.#onSession)
      this.#timer = setInterval(() => this.#check(), CHECK_EVERY_MS)
      this.#timer.unref()
    } else if (!listening && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
      this.#sources.session.off('state', this.#onSession)
    }
  }

  #check() {
    const snapshot = this.snapshot()
    const sig = signature(snapshot)
    if (sig === this.#last) return
    this.#last = sig
    this.#emit(snapshot)
  }

  #observed(): ObservedState {
    const h = this.snapshot()
    const count = (state: RegistrationHealth['state']) =>
      h.registrations.filter((r) => r.state === state).length
    let staleness = 0
    for (const v of h.views) if (!v.current) staleness = Math.max(staleness, (v.staleForMs ?? 0) / 1000)
    return {
      registrations: { written: count('written'), pending: count('pending'), failing: count('failing') },
      instances: h.views
        .filter((v) => v.kind === 'discovery')
        .map((v) => ({ service: v.name, count: v.instances ?? 0 })),
      views: {
        current: h.views.filter((v) => v.current).length,
        stale: h.views.filter((v) => !v.current).length,
      },
      stalenessSeconds: staleness,
      locks: { held: h.locks.held.length, waiting: h.locks.waiting.length },
      leading: h.elections.leading.length,
      leaseSecondsLeft: h.session.lease ? h.session.lease.ttlLeftMs / 1000 : undefined,
    }
  }
}

/** What a change is: the discrete parts of a snapshot (not its clocks and counters). */
function signature(h: HealthSnapshot): string {
  return JSON.stringify([
    h.ready,
    h.session.state,
    h.session.lease?.id,
    h.watch.state,
    h.registrations.map((r) => [r.key, r.state, r.lastError, r.keys.map((k) => k.state)]),
    h.views.map((v) => [v.kind, v.name, v.loaded, v.current, v.instances]),
    h.locks.held.map((l) => l.name),
    h.locks.waiting.map((l) => l.name),
    h.elections.leading.map((e) => e.name),
  ])
}

/** How current a view is, from its `Freshness`. */
export function currency(f: Freshness): Pick<ViewHealth, 'current' | 'revision' | 'staleForMs'> {
  const at = f.syncedAt
  return {
    current: !f.stale,
    revision: f.syncedRevision,
    ...(f.stale ? (at === undefined ? {} : { staleForMs: Math.max(0, Date.now() - at) }) : { staleForMs: 0 }),
  }
}

/** The HTTP answer of a health route: 200 when ready, else 503, with the snapshot as JSON. */
export function healthResponse(snapshot: HealthSnapshot): { status: 200 | 503; body: string } {
  return { status: snapshot.ready ? 200 : 503, body: JSON.stringify(snapshot) }
}

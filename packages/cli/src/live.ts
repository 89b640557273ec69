// The console's live state: the registry catalog, the config tree, the lock/election queues and the drain
// requests, each refreshed from the kit's watch stream and published as one snapshot; lease TTLs read
// again on a timer (etcd sends no event as a lease counts down); and whether all of it is known current.
import { EventEmitter } from 'node:events'
import type { ConfigWatch, EtcdKit } from '@etcdkit/core'
import {
  DRAIN_PREFIX,
  type DrainRequest,
  inspect,
  type KitInspector,
  parseDrainRequest,
  prefixConfig,
} from '@etcdkit/core/integration'
import { type FlagRow, flagRows } from './flags-console.js'
import {
  type ConfigEntry,
  configEntries,
  type Queue,
  queues,
  type ServiceInstanceRow,
  serviceRows,
} from './inspect.js'
import { RegistryView } from './registry.js'

export interface Snapshot {
  /** Every instance of every registry dialect read, each with its `dialect`. */
  services: ServiceInstanceRow[]
  /** The registry dialects read (every dialect whose keys have a common root), in core's order. */
  dialects: string[]
  queues: Queue[]
  config: ConfigEntry[]
  /** Drain requests standing (their owners write weight 0 when they honour them). */
  drains: DrainRequest[]
  /** Feature flags under `flags/` (@etcdkit/openfeature), invalid ones too; empty when they cannot be read. */
  flags: FlagRow[]
  /** Registry keys whose value cannot be read as a registration (shown as such, never dropped silently). */
  unreadable: UnreadableEntry[]
  /** When this snapshot was taken (ISO 8601): TTLs count down from here. */
  at: string
}

/** A registry key whose value is not a registration: its service (from the key), the value, and why. */
export interface UnreadableEntry {
  key: string
  service: string
  /** The registry dialect under whose root the key is. */
  dialect: string
  /** The value as stored, cut at 2,000 characters. */
  value: string
  reason: string
}

/** Lease TTLs read again (seconds; `-1` gone, `null` unreadable), and when. */
export interface TtlUpdate {
  at: string
  ttls: Record<string, number | null>
}

/** Whether what the console shows is known current: stale from `since` (ISO 8601) for `reason`. */
export type Freshness = { stale: false } | { stale: true; since: string; reason: string }

export interface LiveStateOptions {
  /** How often lease TTLs are read again, in ms. @default 2000 */
  ttlEvery?: number
  /** At most this many leases are read per round; more take turns over several rounds. @default 256 */
  ttlBatch?: number
}

/** Where @etcdkit/openfeature keeps flags (its default prefix), namespace-relative. */
const FLAGS_PREFIX = 'flags/'

/** Lease reads in flight at once during a TTL round: a round must not crowd out everyone else's calls. */
const TTL_CONCURRENCY = 8

/**
 * Follows everything the console shows; emits `snapshot` after a change (changes within 50 ms are
 * published together), `ttl` after each TTL round, `freshness` when the views stop or start being known
 * current. Queues and TTLs are read again on each change of the kit's namespace.
 */
export class LiveState extends EventEmitter<{
  snapshot: [Snapshot]
  ttl: [TtlUpdate]
  freshness: [Freshness]
  error: [Error]
}> {
  readonly #kit: EtcdKit
  readonly #registry: RegistryView
  readonly #config: ConfigWatch
  /** The flags prefix, followed like the config prefix (a role without it sees no flags, nothing else lost). */
  readonly #flags: ConfigWatch
  #flagsDirty = true
  readonly #inspector: KitInspector
  readonly #watch: { cancel(): void }
  readonly #ttlTimer: NodeJS.Timeout
  readonly #ttlBatch: number
  #ttlOffset = 0
  #ttlRound: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  #again = false
  /** Queues and drain requests must be read again (the first snapshot reads them too). */
  #othersDirty = true
  #last: Snapshot | undefined
  #lastTtl: TtlUpdate | undefined
  readonly #unreadable = new Map<string, UnreadableEntry>()
  #closed = false
  /** Why each source is stale, and since when (ms); absent while current. */
  readonly #stale = new Map<string, { since: number; reason: string }>()
  #freshness: Freshness = { stale: false }

  constructor(kit: EtcdKit, options: LiveStateOptions = {}) {
    super()
    this.#kit = kit
    this.#ttlBatch = options.ttlBatch ?? 256
    // every registry dialect with a common root: each instance shows the dialect it was read in
    this.#registry = new RegistryView(kit)
    this.#config = kit.config.watch()
    this.#registry.on('change', () => this.#schedule())
    this.#registry.on('invalid', (entry) => {
      this.#unreadable.set(entry.key, {
        key: entry.key,
        service: entry.service,
        dialect: entry.dialect,
        value: entry.value.length > 2_000 ? `${entry.value.slice(0, 2_000)}…` : entry.value,
        reason: entry.reason,
      })
      this.#schedule()
    })
    this.#config.on('change', () => this.#schedule())
    this.#config.on('stale', (reason) => this.#setStale('config', reason, this.#config.syncedAt))
    this.#config.on('current', () => this.#setCurrent('config'))
    this.#flags = prefixConfig(kit, FLAGS_PREFIX).watch()
    this.#flags.on('change', () => {
      this.#flagsDirty = true
      this.#schedule()
    })
    this.#flags.on('stale', (reason) => this.#setStale('flags', reason, this.#flags.syncedAt))
    this.#flags.on('current', () => this.#setCurrent('flags'))
    // lock, election and drain keys live anywhere in the namespace: any change may move a queue
    this.#inspector = inspect(kit)
    this.#watch = this.#inspector.watchNamespace(
      (changes) => {
        if (changes === undefined) return this.#schedule(true) // reset: anything may have changed
        // the registry's catalogs and the config watch follow their own prefixes; anything else may be a queue
        const followed = [...this.#registry.roots, kit.configPrefix, FLAGS_PREFIX]
        let other = false
        for (const { key, deleted } of changes) {
          // an unreadable key deleted: the catalog says nothing of it (one made readable it lists)
          if (deleted && this.#unreadable.delete(key)) this.#schedule()
          if (!followed.some((prefix) => key.startsWith(prefix))) other = true
        }
        if (other) this.#schedule(true)
      },
      {
        onStale: (reason, since) => this.#setStale('watch', reason, since),
        onCurrent: () => {
          this.#setCurrent('watch')
          // what changed while the stream was down arrives as events; TTLs kept counting meanwhile
          this.#schedule(true)
        },
      },
    )
    this.#ttlTimer = setInterval(() => void this.#ttls(), options.ttlEvery ?? 2_000)
    this.#ttlTimer.unref()
  }

  /** The first snapshot, once the registry and config are read. */
  async ready(): Promise<Snapshot> {
    await Promise.all([this.#registry.ready, this.#config.ready])
    await this.#refresh()
    return this.#last!
  }

  get last(): Snapshot | undefined {
    return this.#last
  }

  /** The last TTL round (for a page that connects after it). */
  get lastTtl(): TtlUpdate | undefined {
    return this.#lastTtl
  }

  get freshness(): Freshness {
    return this.#freshness
  }

  close() {
    this.#closed = true
    clearTimeout(this.#timer)
    clearInterval(this.#ttlTimer)
    this.#watch.cancel()
    this.#registry.close()
    this.#config.close()
    this.#flags.close()
  }

  #setStale(source: string, reason: string, since: number | undefined) {
    if (this.#closed || this.#stale.has(source)) return
    this.#stale.set(source, { since: since ?? Date.now(), reason })
    this.#publishFreshness()
  }

  #setCurrent(source: string) {
    if (this.#closed || !this.#stale.delete(source)) return
    this.#publishFreshness()
  }

  #publishFreshness() {
    const oldest = [...this.#stale.values()].sort((a, b) => a.since - b.since)[0]
    const next: Freshness = oldest
      ? { stale: true, since: new Date(oldest.since).toISOString(), reason: oldest.reason }
      : { stale: false }
    if (JSON.stringify(next) === JSON.stringify(this.#freshness)) return
    this.#freshness = next
    this.emit('freshness', next)
  }

  /**
   * One round of lease reads: the leases of the last snapshot, at most `ttlBatch` of them (taking turns
   * when there are more), `TTL_CONCURRENCY` at a time. A round still running skips the next tick.
   */
  #ttls(): Promise<void> {
    if (this.#closed || this.#ttlRound || !this.#last) return Promise.resolve()
    const s = this.#last
    const all = [
      ...new Set(
        [
          ...s.services.map((r) => r.lease),
          ...s.queues.flatMap((q) => q.contenders.map((c) => c.lease)),
        ].filter((l) => l !== ''),
      ),
    ]
    if (all.length === 0) return Promise.resolve()
    if (this.#ttlOffset >= all.length) this.#ttlOffset = 0
    const batch = all.slice(this.#ttlOffset, this.#ttlOffset + this.#ttlBatch)
    this.#ttlOffset += batch.length
    const ttls: Record<string, number | null> = {}
    // the time the round started: a TTL read later is lower, so the page never counts down too slowly
    const at = new Date().toISOString()
    let next = 0
    const worker = async () => {
      while (next < batch.length && !this.#closed) {
        const lease = batch[next++]!
        try {
          const res = await this.#kit.client.leaseClient.leaseTimeToLive({
            ID: BigInt(`0x${lease}`).toString(),
          })
          ttls[lease] = Number(res.TTL)
        } catch {
          ttls[lease] = null
        }
      }
    }
    this.#ttlRound = Promise.all(Array.from({ length: Math.min(TTL_CONCURRENCY, batch.length) }, worker))
      .then(() => {
        if (this.#closed) return
        this.#lastTtl = { at, ttls }
        this.emit('ttl', this.#lastTtl)
      })
      .finally(() => {
        this.#ttlRound = undefined
      })
    return this.#ttlRound
  }

  /** `others`: keys beyond the registry and config changed, so queues and drain requests are read again. */
  #schedule(others = false) {
    if (others) this.#othersDirty = true
    if (this.#closed || this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      // closed meanwhile (the kit with it): that failure is no one's news
      void this.#refresh().catch((err: Error) => {
        this.#othersDirty = true
        if (!this.#closed) this.emit('error', err)
      })
    }, 50)
  }

  #refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true
      return this.#refreshing
    }
    this.#refreshing = (async () => {
      try {
        do {
          this.#again = false
          const services = this.#registry.services
          const others = this.#othersDirty || !this.#last
          this.#othersDirty = false
          const flags = this.#flagsDirty || !this.#last
          this.#flagsDirty = false
          // a registry change does not re-read the whole namespace: with 10,000 instances that read is the cost
          const [rows, q, drains, flagList] = await Promise.all([
            serviceRows(this.#kit, services),
            others ? queues(this.#kit) : this.#last!.queues,
            others ? this.#drains() : this.#last!.drains,
            flags ? this.#flagRows() : this.#last!.flags,
          ])
          this.#last = {
            services: rows,
            dialects: this.#registry.dialects,
            queues: q,
            config: configEntries(this.#config.snapshot(), services.keys()),
            drains,
            flags: flagList,
            unreadable: this.#stillUnreadable(rows),
            at: new Date().toISOString(),
          }
          if (!this.#closed) this.emit('snapshot', this.#last)
        } while (this.#again && !this.#closed)
      } finally {
        this.#refreshing = undefined
      }
    })()
    return this.#refreshing
  }

  #stillUnreadable(rows: readonly ServiceInstanceRow[]): UnreadableEntry[] {
    const readable = new Set(rows.map((r) => r.key))
    for (const key of this.#unreadable.keys()) if (readable.has(key)) this.#unreadable.delete(key)
    return [...this.#unreadable.values()]
  }

  async #flagRows(): Promise<FlagRow[]> {
    try {
      return await flagRows(this.#kit)
    } catch {
      // a role without read access to flags/ sees no flags and everything else; an unreachable etcd
      // keeps the last ones (the next change of a flag reads them again)
      return this.#last?.flags ?? []
    }
  }

  async #drains(): Promise<DrainRequest[]> {
    try {
      const kvs = await this.#inspector.list(DRAIN_PREFIX)
      return kvs.flatMap((kv) => parseDrainRequest(kv.key, kv.value) ?? [])
    } catch {
      // a role without read access to the drain prefix still sees everything else
      return []
    }
  }
}

// The OpenFeature server provider: flagd definitions from etcd, live, evaluated by @openfeature/flagd-core.
import { EventEmitter } from 'node:events'
import {
  ClosedError,
  type Config,
  type ConfigEvent,
  type ConfigWatch,
  type EtcdKit,
  EtcdKitError,
  EtcdUnavailableError,
  InvalidArgumentError,
  InvalidConfigValueError,
  type Registration,
} from '@etcdkit/core'
import { checkKeys, checkMs, isPlainObject, prefixConfig, show } from '@etcdkit/core/integration'
import { FlagdCore } from '@openfeature/flagd-core'
import {
  ErrorCode,
  type EvaluationContext,
  type FlagValue,
  type FlagValueType,
  type JsonValue,
  type Logger,
  OpenFeatureEventEmitter,
  type Provider,
  ProviderEvents,
  type ResolutionDetails,
  StandardResolutionReasons,
} from '@openfeature/server-sdk'
import { InstanceContext } from './context.js'
import { EVALUATORS_KEY, flagsPrefix } from './definition.js'
import { bindMeterProvider, recordFlagRefusal, recordFlagUpdate } from './metrics.js'
import { FlagStore } from './store.js'

export interface EtcdKitFlagProviderOptions {
  /** The kit whose etcd, watch stream and config cache settings the flags come through. */
  kit: EtcdKit
  /**
   * Where the flags live, relative to the kit's namespace: flag `new-checkout` is the key
   * `{namespace}{prefix}new-checkout`. @default "flags/"
   */
  prefix?: string
  /**
   * How long `initialize` waits for the first read of etcd (or, with the kit's `configCache`, for the
   * cached flags), in ms; past it, it rejects and the provider is READY as soon as the read lands.
   * @default 10_000
   */
  timeout?: number
  /**
   * This instance's registration (`kit.register()`'s result, or a function returning it once made): its
   * service, address, `zone`, `version` and metadata are added to every evaluation context. Without it,
   * the service and address of the kit's registrations are used (their metadata is not visible to us).
   */
  registration?: Registration | (() => Registration | undefined)
  /** The default `targetingKey`. @default `{service}/{address}` once registered, else `{hostname}/{pid}` */
  instanceId?: string
}

/** The provider's own events, beside the OpenFeature ones in `events`. */
export interface EtcdKitFlagProviderEvents {
  /** Flags now resolve differently (changed, added, deleted): the same list as `PROVIDER_CONFIGURATION_CHANGED`. */
  change: [flagsChanged: string[]]
  /** A definition in etcd was refused (not JSON, not flagd's schema); the flag keeps its last good definition. */
  invalid: [error: InvalidConfigValueError]
}

/** Where the provider stands (the SDK keeps its own status from the events we emit). */
export type FlagProviderState = 'idle' | 'starting' | 'ready' | 'stale' | 'error' | 'closed'

/** How long a first read's watch may go unconfirmed before the provider says STALE (the watchdog's dead time). */
const CONFIRM_GRACE_MS = 3_500

const OPTIONS = ['kit', 'prefix', 'timeout', 'registration', 'instanceId']

/**
 * An OpenFeature server provider keeping flagd-format flag definitions in etcd, one flag per key under
 * `{namespace}{prefix}` (so each has its own history, writer record and rollback), followed by core's config
 * machinery on that prefix (`prefixConfig`: one read, one watch on the kit's stream, its own config cache file) and evaluated by `@openfeature/flagd-core`. A change is seen by the
 * next evaluation once the watch delivers it and emits `PROVIDER_CONFIGURATION_CHANGED`; a definition that
 * does not pass flagd's schema keeps the last good one (logged, `invalid` event, metric); `PROVIDER_STALE`
 * and `PROVIDER_READY` follow the watch's staleness.
 */
export class EtcdKitFlagProvider extends EventEmitter<EtcdKitFlagProviderEvents> implements Provider {
  readonly metadata = { name: 'etcdkit' } as const
  readonly runsOn = 'server' as const
  /** OpenFeature's provider events (the SDK subscribes to them). */
  readonly events = new OpenFeatureEventEmitter()
  /** The flags' prefix relative to the kit's namespace (ends with "/"). */
  readonly prefix: string
  readonly #kit: EtcdKit
  /** The config machinery on the flags' prefix (core's `prefixConfig`): mirror, watch, cache. */
  readonly #flags: Config
  readonly #timeout: number
  readonly #store = new FlagStore()
  readonly #core: FlagdCore
  readonly #context: InstanceContext
  #watch: ConfigWatch | undefined
  #starting: Promise<void> | undefined
  #state: FlagProviderState = 'idle'
  #pending = new Set<string>()
  #graceTimer: NodeJS.Timeout | undefined
  #flushQueued = false

  constructor(options: EtcdKitFlagProviderOptions) {
    super()
    if (!isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid EtcdKitFlagProvider options ${show(options)}`)
    checkKeys(options, OPTIONS, 'EtcdKitFlagProvider')
    const { kit } = options
    if (typeof kit !== 'object' || kit === null || typeof kit.config?.watch !== 'function')
      throw new InvalidArgumentError(`invalid kit ${show(typeof kit)}: expected an EtcdKit`)
    const prefix = flagsPrefix(options.prefix)
    const timeout = checkMs(options.timeout ?? 10_000, 'timeout', true)
    const { registration, instanceId } = options
    if (registration !== undefined && typeof registration !== 'object' && typeof registration !== 'function')
      throw new InvalidArgumentError(
        `invalid registration ${show(registration)}: expected kit.register()'s result`,
      )
    if (instanceId !== undefined && (typeof instanceId !== 'string' || instanceId === ''))
      throw new InvalidArgumentError(`invalid instanceId ${show(instanceId)}: expected a non-empty string`)
    this.#kit = kit
    this.prefix = prefix
    this.#flags = prefixConfig(kit, prefix)
    this.#timeout = timeout
    this.#context = new InstanceContext({ kit, registration, instanceId })
    this.#core = new FlagdCore(this.#store, {
      error: (...args) => kit.logger.error({ args }, 'flagd-core'),
      warn: (...args) => kit.logger.warn({ args }, 'flagd-core'),
      info: () => {},
      debug: () => {},
    })
    bindMeterProvider()
  }

  /** `ready` once the flags are read and known current, `stale` while the watch is not known current, ... */
  get state(): FlagProviderState {
    return this.#state
  }

  // a method, not a comparison: TypeScript narrows `#state` across the awaits of `#start`
  get #closed(): boolean {
    return this.#state === 'closed'
  }

  /**
   * `true` while the flags are not known current: not read yet, or the watch not confirmed by etcd, broken
   * or silent (they still answer with the last definitions read).
   */
  get stale(): boolean {
    return this.#watch?.stale ?? true
  }

  /** The flag keys with a definition in force now. */
  get flagKeys(): string[] {
    return [...this.#store.getFlags().keys()].sort()
  }

  /** The etcd key of flag `key` (namespace-relative, as `etcdctl` sees it below the kit's namespace). */
  keyOf(flagKey: string): string {
    return `${this.prefix}${flagKey}`
  }

  /**
   * Opens the watch on the flags and resolves once they are read (or served from the kit's config cache
   * while etcd does not answer), at most `timeout` ms; the SDK calls it once. Rejects when the read is
   * refused (permission denied) or late: the provider then becomes READY when the read lands.
   */
  initialize(): Promise<void> {
    this.#starting ??= this.#start()
    return this.#starting
  }

  async #start(): Promise<void> {
    if (this.#state === 'closed') throw new ClosedError('the etcd flag provider')
    this.#state = 'starting'
    const watch = this.#flags.watch()
    this.#watch = watch
    watch.on('change', (event) => this.#onChange(event))
    watch.on('stale', (reason) => this.#onStale(reason))
    watch.on('current', () => this.#onCurrent())
    // the kit closed under us: no change will ever arrive again; the last definitions keep answering
    watch.on('close', () => {
      if (this.#closed) return
      this.#watch = undefined
      this.#onStale('the kit was closed: the flags no longer follow etcd')
    })
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.#timeout)
    })
    let outcome: 'read' | 'late'
    try {
      outcome = await Promise.race([watch.ready.then(() => 'read' as const), late])
    } catch (err) {
      if (!this.#closed) this.#state = 'error'
      throw err instanceof EtcdKitError
        ? err
        : new EtcdUnavailableError(`reading the flags under ${show(this.keyOf(''))}`, err)
    } finally {
      clearTimeout(timer)
    }
    if (outcome === 'late') {
      this.#state = 'error'
      // the watch goes on: when its read lands, the flags are loaded and READY is emitted
      watch.ready.then(
        () => {
          if (this.#state !== 'error') return
          this.#load()
          this.#state = watch.stale && this.#flags.fromCache ? 'stale' : 'ready'
          this.events.emit(this.#state === 'stale' ? ProviderEvents.Stale : ProviderEvents.Ready, {
            message: 'the flags were read from etcd',
          })
        },
        () => {},
      )
      throw new EtcdUnavailableError(
        `the flags under ${show(this.keyOf(''))} were not read within ${this.#timeout} ms (etcd unreachable?); they load when etcd answers`,
      )
    }
    if (this.#closed) throw new ClosedError('the etcd flag provider')
    this.#load()
    if (this.#flags.fromCache) {
      this.#state = 'stale'
      // after the SDK's own READY for initialize(): served from the local copy until etcd answers
      setImmediate(() => {
        if (this.#state === 'stale')
          this.events.emit(ProviderEvents.Stale, {
            message: `etcd has not answered: flags served from the config cache ${this.#flags.cacheFile}`,
          })
      })
    } else {
      this.#state = 'ready'
      // read, but the watch not yet confirmed by etcd: a stream that never confirms it never turns stale
      // (stale is a change from current), so give it the watchdog's time to confirm, then say STALE
      if (watch.stale) {
        this.#graceTimer = setTimeout(() => {
          if (this.#state === 'ready' && watch.stale)
            this.#onStale('the flags watch was not confirmed by etcd')
        }, CONFIRM_GRACE_MS)
        this.#graceTimer.unref()
      }
    }
  }

  /** Stops following the flags (the SDK calls it when the provider is replaced or OpenFeature closes). */
  async onClose(): Promise<void> {
    this.#state = 'closed'
    clearTimeout(this.#graceTimer)
    this.#context.close()
    this.#watch?.close()
    this.#watch = undefined
  }

  resolveBooleanEvaluation(
    flagKey: string,
    defaultValue: boolean,
    context: EvaluationContext,
    logger?: Logger,
  ): Promise<ResolutionDetails<boolean>> {
    return Promise.resolve(this.resolve('boolean', flagKey, defaultValue, context, logger))
  }

  resolveStringEvaluation(
    flagKey: string,
    defaultValue: string,
    context: EvaluationContext,
    logger?: Logger,
  ): Promise<ResolutionDetails<string>> {
    return Promise.resolve(this.resolve('string', flagKey, defaultValue, context, logger))
  }

  resolveNumberEvaluation(
    flagKey: string,
    defaultValue: number,
    context: EvaluationContext,
    logger?: Logger,
  ): Promise<ResolutionDetails<number>> {
    return Promise.resolve(this.resolve('number', flagKey, defaultValue, context, logger))
  }

  resolveObjectEvaluation<T extends JsonValue>(
    flagKey: string,
    defaultValue: T,
    context: EvaluationContext,
    logger?: Logger,
  ): Promise<ResolutionDetails<T>> {
    return Promise.resolve(this.resolve('object', flagKey, defaultValue, context, logger))
  }

  /**
   * Resolves `flagKey` now, synchronously, with the instance's context under `context`: what the four
   * `resolve*Evaluation` methods wrap in a promise for the SDK.
   */
  resolve<T extends FlagValue>(
    type: FlagValueType,
    flagKey: string,
    defaultValue: T,
    context: EvaluationContext = {},
    logger?: Logger,
  ): ResolutionDetails<T> {
    if (this.#state === 'closed')
      return this.#error(defaultValue, ErrorCode.GENERAL, 'the etcd flag provider is closed')
    let result: ResolutionDetails<T>
    try {
      // only a rule reading instance facts the caller did not pass costs a copy of the context
      const reads = this.#store.reads(flagKey)
      const ctx = reads === undefined ? context : this.#context.fill(context, reads)
      result = this.#core.resolve(type, flagKey, defaultValue, ctx, logger)
    } catch (err) {
      return this.#error(
        defaultValue,
        ErrorCode.GENERAL,
        `evaluating flag ${show(flagKey)} failed: ${err instanceof Error ? err.message : String(err)}`,
      )
    }
    if (result.errorCode === ErrorCode.FLAG_NOT_FOUND) return this.#notFound(flagKey, defaultValue)
    return result
  }

  #error<T>(value: T, errorCode: ErrorCode, errorMessage: string): ResolutionDetails<T> {
    return { value, reason: StandardResolutionReasons.ERROR, errorCode, errorMessage }
  }

  /** Why `key` has no definition in force: never written, deleted, refused, or not read yet. */
  #notFound<T>(key: string, value: T): ResolutionDetails<T> {
    const state = this.#store.state(key)
    const where = show(this.keyOf(key))
    if (state?.deletedAt !== undefined)
      return this.#error(
        value,
        ErrorCode.FLAG_NOT_FOUND,
        `flag ${show(key)} was deleted from etcd (${where}, revision ${state.deletedAt})`,
      )
    if (state?.error !== undefined)
      return this.#error(
        value,
        ErrorCode.PARSE_ERROR,
        `flag ${show(key)} has no valid definition in etcd (${where}, revision ${state.errorRevision}): ${state.error}`,
      )
    if (this.#state === 'error' || this.#state === 'starting' || this.#state === 'idle')
      return this.#error(value, ErrorCode.PROVIDER_NOT_READY, 'the flags have not been read from etcd yet')
    return this.#error(
      value,
      ErrorCode.FLAG_NOT_FOUND,
      `flag ${show(key)} is not defined in etcd (no key ${where})`,
    )
  }

  /** Every flag present once the watch is ready (idempotent with changes already applied). */
  #load() {
    const watch = this.#watch
    if (!watch) return
    for (const [key, text] of watch.snapshot()) this.#apply(key, text, watch.syncedRevision)
    this.#pending.clear() // the initial set is not a change
  }

  #onChange(event: ConfigEvent) {
    this.#apply(event.key, event.value, event.revision)
  }

  /** Applies one key's text (relative to the flags prefix), reporting refusals now and changes per batch. */
  #apply(key: string, text: string | undefined, revision: string) {
    if (key === '' || key.includes('/')) {
      this.#kit.logger.debug(
        { key: this.keyOf(key) },
        'not a flag key (nested below the flags prefix); ignored',
      )
      return
    }
    const applied = this.#store.apply(key, text, revision)
    for (const refused of applied.refused) {
      const error = new InvalidConfigValueError(
        this.keyOf(refused.key),
        refused.text,
        refused.key === EVALUATORS_KEY
          ? `the shared $evaluators are not a JSON object (the last good ones stay): ${refused.reason}`
          : this.#store.state(refused.key)?.good
            ? `not a valid flagd flag definition; the last good definition stays in force: ${refused.reason}`
            : `not a valid flagd flag definition; the flag resolves with PARSE_ERROR: ${refused.reason}`,
        undefined,
        { revision: refused.revision },
      )
      this.#kit.logger.warn({ err: error, flag: refused.key, revision: refused.revision }, error.message)
      recordFlagRefusal(refused.key)
      this.emit('invalid', error)
    }
    for (const changed of applied.changed) {
      this.#pending.add(changed)
      recordFlagUpdate(changed)
    }
    // the changes of one watch response arrive in one synchronous burst: one event for all of them
    if (this.#pending.size > 0 && !this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(() => this.#flush())
    }
  }

  #flush() {
    this.#flushQueued = false
    const flagsChanged = [...this.#pending].sort()
    this.#pending.clear()
    if (flagsChanged.length === 0 || this.#state === 'starting' || this.#state === 'closed') return
    // evaluations already see the change (the store was updated in the watch callback): our own event
    // first, then the SDK's, whose dispatch to every client and API handler costs ~45 µs per change
    this.emit('change', flagsChanged)
    this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged })
  }

  #onStale(reason: string) {
    clearTimeout(this.#graceTimer)
    if (this.#state !== 'ready') return
    this.#state = 'stale'
    this.events.emit(ProviderEvents.Stale, { message: `flags may be out of date: ${reason}` })
  }

  #onCurrent() {
    if (this.#state !== 'stale') return
    this.#state = 'ready'
    this.events.emit(ProviderEvents.Ready, { message: 'the flags are current again' })
  }
}

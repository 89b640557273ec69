import { ConfigTree } from './config-tree.js'
import { ConfigValue, type ConfigValueOptions } from './config-value.js'
import { ConfigWatch } from './config-watch.js'
import { ClosedError, etcdError, InvalidArgumentError, show } from './errors.js'
import { currency, type ViewHealth } from './health.js'
import type { Keyspace } from './keyspace.js'
import type { Logger } from './logger.js'
import { checkConfigKey, checkKeys, checkServiceName, isPlainObject } from './validate.js'
import type { WatchHub } from './watch.js'

/** Which key `get`, `set` and `delete` address. */
export interface ConfigKeyOptions {
  /** Address the service's own key `{configPrefix}{service}/{key}` instead of the shared `{configPrefix}{key}`. */
  service?: string
}

const VALUE_OPTIONS = new Set(['parse', 'validate', 'default'])

/**
 * `kit.config`: live configuration values read from `{configPrefix}{key}`, where the kit's own service's
 * `{configPrefix}{service}/{key}` overrides the shared key. Every handle of a kit shares one read of the
 * config prefix and one watch on the kit's watch stream (started with the first handle, stopped with the
 * last). `get`/`set`/`delete` address one key exactly, for tools and tests.
 */
export class Config {
  /** Where configuration lives (namespace-relative). */
  readonly prefix: string
  /** The service whose `{prefix}{service}/{key}` overrides `{prefix}{key}`; `undefined`: no overrides. */
  readonly service: string | undefined
  readonly #ks: Keyspace
  readonly #hub: WatchHub
  readonly #log: Logger
  #tree: ConfigTree | undefined
  readonly #handles = new Set<{ close(): void }>()
  #closed = false

  /** @internal created by the kit */
  constructor(ks: Keyspace, hub: WatchHub, log: Logger, prefix: string, service: string | undefined) {
    this.#ks = ks
    this.#hub = hub
    this.#log = log
    this.prefix = prefix
    this.service = service
  }

  /** Number of open handles (values and watches). */
  get size(): number {
    return this.#handles.size
  }

  /** The text value, `undefined` while neither key exists. */
  value(
    key: string,
    options?: {
      parse?: never
      validate?: (value: string) => unknown
      default?: undefined
    },
  ): ConfigValue<string | undefined>
  /** The text value, `default` while neither key exists. */
  value(
    key: string,
    options: { parse?: never; validate?: (value: string) => unknown; default: string },
  ): ConfigValue<string>
  /** The parsed value, `default` while neither key exists. */
  value<T>(
    key: string,
    options: ConfigValueOptions<T> & { parse: (text: string) => T; default: T },
  ): ConfigValue<T>
  /** The parsed value, `undefined` while neither key exists. */
  value<T>(
    key: string,
    options: ConfigValueOptions<T> & { parse: (text: string) => T; default?: undefined },
  ): ConfigValue<T | undefined>
  /**
   * A live value of `{prefix}{service}/{key}` if it exists, else `{prefix}{key}`, else `default`; read on the
   * kit's one config watch. `current` holds the last good value; `change` and `invalid` report what happens.
   */
  value<T>(key: string, options: ConfigValueOptions<T> = {}): ConfigValue<T> {
    if (this.#closed) throw new ClosedError('the kit')
    checkConfigKey(key)
    if (!isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid options for config value ${show(key)}: expected an object`)
    for (const name of Object.keys(options)) {
      if (!VALUE_OPTIONS.has(name))
        throw new InvalidArgumentError(
          `unknown option ${show(name)} for config value ${show(key)}: expected parse, validate or default`,
        )
    }
    for (const name of ['parse', 'validate'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function')
        throw new InvalidArgumentError(`invalid ${name} ${show(options[name])} for config value ${show(key)}`)
    }
    const handle: ConfigValue<T> = new ConfigValue(this.#open(), this.#log, key, this.service, options, () =>
      this.#release(handle),
    )
    this.#handles.add(handle)
    return handle
  }

  /** Every change under `{prefix}{subtree}` ("" for the whole config), as events and an async iterable. */
  watch(subtree = ''): ConfigWatch {
    if (this.#closed) throw new ClosedError('the kit')
    checkConfigKey(subtree, 'config subtree', true)
    const handle: ConfigWatch = new ConfigWatch(this.#open(), subtree, () => this.#release(handle))
    this.#handles.add(handle)
    return handle
  }

  /** Reads one key from etcd (no layering): its text, or `undefined` when it does not exist. */
  async get(key: string, options?: ConfigKeyOptions): Promise<string | undefined> {
    const k = this.#key(key, options)
    const res = await this.#ks.kv.range({ key: k }).catch((err: unknown) => {
      throw etcdError(err, `reading config key ${show(this.#ks.name(k))}`)
    })
    return res.kvs[0]?.value.toString()
  }

  /** Writes one key (`value` is UTF-8 text). */
  async set(key: string, value: string, options?: ConfigKeyOptions): Promise<void> {
    const k = this.#key(key, options)
    if (typeof value !== 'string' || Buffer.from(value).toString() !== value)
      throw new InvalidArgumentError(
        `invalid value ${show(value)} for config key ${show(key)}: expected UTF-8 text`,
      )
    await this.#ks.kv.put({ key: k, value: Buffer.from(value) }).catch((err: unknown) => {
      throw etcdError(err, `writing config key ${show(this.#ks.name(k))}`)
    })
  }

  /** Deletes one key; resolves whether it existed. */
  async delete(key: string, options?: ConfigKeyOptions): Promise<boolean> {
    const k = this.#key(key, options)
    const res = await this.#ks.kv.deleteRange({ key: k }).catch((err: unknown) => {
      throw etcdError(err, `deleting config key ${show(this.#ks.name(k))}`)
    })
    return res.deleted !== '0'
  }

  /** Stops the config watch; every handle keeps its last value and emits `close`. Idempotent. */
  close() {
    this.#closed = true
    for (const handle of [...this.#handles]) handle.close()
    this.#tree?.close()
    this.#tree = undefined
  }

  /** Each open config value, for `kit.health()`. */
  views(): ViewHealth[] {
    const views: ViewHealth[] = []
    for (const h of this.#handles) {
      if (h instanceof ConfigValue)
        views.push({ kind: 'config', name: h.key, loaded: h.loaded, ...currency(h) })
      // a subtree watch: loaded once it was current at least once
      else if (h instanceof ConfigWatch)
        views.push({ kind: 'config', name: `${h.prefix}*`, loaded: h.syncedAt !== undefined, ...currency(h) })
    }
    return views
  }

  #key(key: string, options: ConfigKeyOptions | undefined): Buffer {
    if (this.#closed) throw new ClosedError('the kit')
    checkConfigKey(key)
    if (options !== undefined && !isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid options ${show(options)} for config key ${show(key)}`)
    if (options !== undefined) checkKeys(options, ['service'], 'config key')
    const service = options?.service
    return this.#ks.key(
      service === undefined ? this.prefix + key : `${this.prefix}${checkServiceName(service)}/${key}`,
    )
  }

  #open(): ConfigTree {
    this.#tree ??= new ConfigTree(this.prefix, this.#ks, this.#hub, this.#log)
    return this.#tree
  }

  /** The last handle stops the tree's read and watch; the next one starts afresh. */
  #release(handle: { close(): void }) {
    if (!this.#handles.delete(handle) || this.#handles.size > 0) return
    this.#tree?.close()
    this.#tree = undefined
  }
}

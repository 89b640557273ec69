import { ClosedError, ConfigConflictError, etcdError, InvalidArgumentError, show } from '../errors.js'
import type { Keyspace } from '../etcd/keyspace.js'
import type { WatchHub } from '../etcd/watch.js'
import { currency, type ViewHealth } from '../ops/health.js'
import type { Logger } from '../ops/logger.js'
import { checkConfigKey, checkKeys, checkServiceName, checkText, isPlainObject } from '../validate.js'
import type { ConfigCache } from './cache.js'
import { type ConfigRevision, type ConfigRollback, history, rollback } from './history.js'
import { ConfigObject, type ConfigObjectOptions, type ConfigTreeObject } from './object.js'
import { checkSchema, type StandardSchemaV1 } from './schema.js'
import { ConfigTree } from './tree.js'
import { type ConfigSchemaOptions, ConfigValue, type ConfigValueOptions } from './value.js'
import { ConfigWatch } from './watch.js'
import { type ConfigWriteOptions, recordedPut, WriterRecords } from './writer.js'

/** Which key `get`, `set` and `delete` address. */
export interface ConfigKeyOptions {
  /** Address the service's own key `{configPrefix}{service}/{key}` instead of the shared `{configPrefix}{key}`. */
  service?: string
}

/** Options of `set`, `setMany` and `rollback`: which key, and who is writing. */
export interface ConfigSetOptions extends ConfigKeyOptions, ConfigWriteOptions {}

/** Options of `set`: which key, who is writing, and an optional guard. */
export interface ConfigSetKeyOptions extends ConfigSetOptions {
  /**
   * Write only if the key's mod revision is still this one (`"0"`: only if the key does not exist), in the
   * same txn as the write: otherwise nothing is written and `set` rejects with a `ConfigConflictError`. For a
   * read-modify-write that must not lose a change made between its read and its write.
   * @default no guard: the write applies whatever the key holds
   */
  expect?: string
}

/** Options of `history`. */
export interface ConfigHistoryOptions extends ConfigKeyOptions {
  /** At most this many values, newest first. @default 100 */
  limit?: number
}

/** Options of `rollback`. */
export interface ConfigRollbackOptions extends ConfigSetOptions {
  /**
   * Write only if the key's mod revision is still this one (e.g. `history(key)[0].modRevision`, what a
   * user looked at before choosing). @default the mod revision read by the rollback itself
   */
  expect?: string
}

const WRITE_OPTIONS = ['service', 'writer']
const OBJECT_OPTIONS = ['schema', 'parse', 'default'] as const

const VALUE_OPTIONS = ['parse', 'schema', 'validate', 'default'] as const

/**
 * Checks the options of a config handle (`kit.config.value()`, `object()`, `@Config`): a plain object, no
 * key outside `allowed`, `parse` and `validate` functions, `schema` a Standard Schema. `what` names the
 * handle in the messages (`config value "rate"`).
 */
function checkHandleOptions(
  options: unknown,
  allowed: readonly string[],
  what: string,
  /** A `schema` key, even `undefined`, must be a schema (a value's); else only a defined one (an object's). */
  schemaKey: boolean,
): void {
  if (!isPlainObject(options))
    throw new InvalidArgumentError(`invalid options for ${what}: expected an object`)
  for (const name of Object.keys(options)) {
    if (!allowed.includes(name))
      throw new InvalidArgumentError(
        `unknown option ${show(name)} for ${what}: expected ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}`,
      )
  }
  for (const name of ['parse', 'validate'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function')
      throw new InvalidArgumentError(`invalid ${name} ${show(options[name])} for ${what}`)
  }
  if (schemaKey ? 'schema' in options : options.schema !== undefined) checkSchema(options.schema, what)
}

/** The options of a config value (`kit.config.value()`, the decorators' `@Config`), checked. */
export function checkValueOptions(options: unknown, what: string): void {
  checkHandleOptions(options, VALUE_OPTIONS, what, true)
}

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
  readonly #cache: ConfigCache | undefined
  readonly #records: WriterRecords
  readonly #writerService: string | undefined
  #tree: ConfigTree | undefined
  readonly #handles = new Set<{ close(): void }>()
  #closed = false

  /** @internal created by the kit */
  constructor(
    ks: Keyspace,
    hub: WatchHub,
    log: Logger,
    prefix: string,
    service: string | undefined,
    cache?: ConfigCache,
    /** The service named in writer records (`prefixConfig`'s trees have no overrides, but a writer still has a service). */
    writerService: string | undefined = service,
  ) {
    this.#writerService = writerService
    this.#cache = cache
    this.#ks = ks
    this.#hub = hub
    this.#log = log
    this.#records = new WriterRecords(ks, log)
    this.prefix = prefix
    this.service = service
  }

  /**
   * The values in force come from the local cache (`configCache`) because etcd has not answered yet: they
   * may be stale. False once a read of etcd has been applied (and always without a cache).
   */
  get fromCache(): boolean {
    return this.#tree?.fromCache ?? false
  }

  /** The local cache file of this kit's config (`configCache`), or `undefined` without one. */
  get cacheFile(): string | undefined {
    return this.#cache?.file
  }

  /** Number of open handles (values and watches). */
  get size(): number {
    return this.#handles.size
  }

  /** The value checked and typed by a Standard Schema (zod, valibot, ...), `default` while neither key exists. */
  value<S extends StandardSchemaV1>(
    key: string,
    options: ConfigSchemaOptions<S> & { default: StandardSchemaV1.InferOutput<S> },
  ): ConfigValue<StandardSchemaV1.InferOutput<S>>
  /** The value checked and typed by a Standard Schema, `undefined` while neither key exists. */
  value<S extends StandardSchemaV1>(
    key: string,
    options: ConfigSchemaOptions<S> & { default?: undefined },
  ): ConfigValue<StandardSchemaV1.InferOutput<S> | undefined>
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
  value<T>(
    key: string,
    options: ConfigValueOptions<T> | ConfigSchemaOptions<StandardSchemaV1<unknown, T>> = {},
  ): ConfigValue<T> {
    if (this.#closed) throw new ClosedError('the kit')
    checkConfigKey(key)
    checkValueOptions(options, `config value ${show(key)}`)
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

  /** The subtree as a typed object checked by a Standard Schema, `default` while it is empty. */
  object<S extends StandardSchemaV1>(
    prefix: string,
    options: ConfigObjectOptions<StandardSchemaV1.InferOutput<S>> & {
      schema: S
      default: StandardSchemaV1.InferOutput<S>
    },
  ): ConfigObject<StandardSchemaV1.InferOutput<S>>
  /** The subtree as a typed object checked by a Standard Schema, `undefined` while it is empty. */
  object<S extends StandardSchemaV1>(
    prefix: string,
    options: ConfigObjectOptions<StandardSchemaV1.InferOutput<S>> & { schema: S; default?: undefined },
  ): ConfigObject<StandardSchemaV1.InferOutput<S> | undefined>
  /** The subtree as a plain object (text leaves unless `parse`), `undefined` while it is empty. */
  object(
    prefix: string,
    options?: { parse?: (text: string) => unknown; schema?: undefined; default?: undefined },
  ): ConfigObject<ConfigTreeObject | undefined>
  /**
   * Every key under `{prefix}{subtree}` as ONE object (`db/pool/max` under `db/` is `{ pool: { max } }`),
   * read at one revision, checked as a whole, and replaced atomically: a change written in one txn
   * (`setMany`) is seen whole or not at all. Exactly that subtree: no service layering.
   */
  object<T>(prefix: string, options: ConfigObjectOptions<T> = {}): ConfigObject<T> {
    if (this.#closed) throw new ClosedError('the kit')
    checkConfigKey(prefix, 'config subtree', true)
    const subtree = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`
    checkHandleOptions(options, OBJECT_OPTIONS, `config object ${show(prefix)}`, false)
    const handle: ConfigObject<T> = new ConfigObject(this.#open(), this.#log, subtree, options, () =>
      this.#release(handle),
    )
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

  /**
   * Writes one key (`value` is UTF-8 text, stored as is), with a record of who wrote it beside it (see
   * `history`); resolves with the revision of the write.
   */
  async set(key: string, value: string, options?: ConfigSetKeyOptions): Promise<string> {
    const name = this.#name(key, options, [...WRITE_OPTIONS, 'expect']) // a key that is not a string must not become one as a property name
    // setMany's null means "delete": through set() it would delete silently what the caller meant to write
    if (value === null)
      throw new InvalidArgumentError(
        `invalid value null for config key ${show(key)}: set() writes text; use config.delete() to delete a key`,
      )
    checkText(value, `value for config key ${show(key)}`)
    const expect = options?.expect
    if (expect === undefined) return this.setMany({ [key]: value }, options)
    if (typeof expect !== 'string' || !/^\d+$/.test(expect))
      throw new InvalidArgumentError(
        `invalid expect ${show(expect)} for config key ${show(key)}: expected a decimal mod revision ("0": absent)`,
      )
    const { expect: _, ...write } = options ?? {}
    const writer = this.#writer(write)
    const res = await this.#records
      .txn([{ key: this.#ks.key(name), target: 'Mod', result: 'Equal', mod_revision: expect }], (records) =>
        recordedPut(this.#ks, name, value, this.#writerService, writer, undefined, records),
      )
      .catch((err: unknown) => {
        throw etcdError(err, `writing config key ${show(name)}`)
      })
    if (!res.succeeded)
      throw new ConfigConflictError(
        name,
        `config key ${show(name)} not written: it changed since it was read (mod revision ${expect} expected)`,
      )
    return res.header.revision
  }

  /**
   * Writes several keys in ONE txn (`null` deletes a key), so readers see all of it at one revision or
   * none of it: a `config.object()` reader swaps them in together. Each value's writer is recorded beside
   * it. Resolves with the revision of the write.
   */
  async setMany(values: Record<string, string | null>, options?: ConfigSetOptions): Promise<string> {
    if (!isPlainObject(values as unknown) || Object.keys(values).length === 0)
      throw new InvalidArgumentError(
        `invalid values ${show(values)}: expected an object of key: text (or null)`,
      )
    const writer = this.#writer(options)
    const writes = Object.entries(values).map(([key, value]) => {
      const name = this.#name(key, options, WRITE_OPTIONS)
      if (value !== null) checkText(value, `value for config key ${show(key)}`)
      return [name, value] as const
    })
    const ops = (records: boolean) =>
      writes.flatMap(([name, value]) =>
        value === null
          ? [{ request_delete_range: { key: this.#ks.key(name) } }]
          : recordedPut(this.#ks, name, value, this.#writerService, writer, undefined, records),
      )
    const res = await this.#records.txn([], ops).catch((err: unknown) => {
      throw etcdError(
        err,
        `writing config keys ${show(writes.map(([name]) => this.#ks.key(name).toString()))}`,
      )
    })
    return res.header.revision
  }

  /**
   * The values etcd still keeps of one key, newest first: value, revision, version and, for values written
   * through etcdkit, who wrote them and when. Walks back until the key's creation, compaction or `limit`.
   */
  async history(key: string, options?: ConfigHistoryOptions): Promise<ConfigRevision[]> {
    const name = this.#name(key, options, ['service', 'limit'])
    const limit = options?.limit ?? 100
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new InvalidArgumentError(
        `invalid limit ${show(limit)} for the history of ${show(key)}: expected an integer >= 1`,
      )
    return history(this.#ks, name, limit).catch((err: unknown) => {
      throw etcdError(err, `reading the history of config key ${show(name)}`)
    })
  }

  /**
   * Writes back the value `key` held at `revision` (a `history` entry's `revision`), in one txn that
   * applies only if the key has not changed since it was read (or since `expect`): otherwise nothing is
   * written and it rejects with a `ConfigConflictError`. A revision compacted away, or at which the key
   * was not written, rejects with a `ConfigRevisionUnavailableError`.
   */
  async rollback(key: string, revision: string, options?: ConfigRollbackOptions): Promise<ConfigRollback> {
    const name = this.#name(key, options, ['service', 'writer', 'expect'])
    return rollback(this.#ks, this.#records, name, revision, {
      service: this.#writerService,
      writer: this.#writer(options),
      ...(options?.expect === undefined ? {} : { expect: options.expect }),
    }).catch((err: unknown) => {
      throw etcdError(err, `rolling config key ${show(name)} back to revision ${show(revision)}`)
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
    return this.#ks.key(this.#name(key, options))
  }

  /** The namespace-relative etcd key that `key` (with `options.service`) addresses. */
  #name(
    key: string,
    options: ConfigKeyOptions | undefined,
    allowed: readonly string[] = ['service'],
  ): string {
    if (this.#closed) throw new ClosedError('the kit')
    checkConfigKey(key)
    if (options !== undefined && !isPlainObject(options as unknown))
      throw new InvalidArgumentError(`invalid options ${show(options)} for config key ${show(key)}`)
    if (options !== undefined) checkKeys(options, allowed, 'config key')
    const service = options?.service
    return service === undefined ? this.prefix + key : `${this.prefix}${checkServiceName(service)}/${key}`
  }

  #writer(options: ConfigWriteOptions | undefined): string | undefined {
    const writer = options?.writer
    if (writer !== undefined && (typeof writer !== 'string' || writer.length > 256))
      throw new InvalidArgumentError(
        `invalid writer ${show(writer)}: expected a string of at most 256 characters`,
      )
    if (writer !== undefined) checkText(writer, 'writer')
    return writer
  }

  #open(): ConfigTree {
    this.#tree ??= new ConfigTree(this.prefix, this.#ks, this.#hub, this.#log, this.#cache, this.service)
    return this.#tree
  }

  /** The last handle stops the tree's read and watch; the next one starts afresh. */
  #release(handle: { close(): void }) {
    if (!this.#handles.delete(handle) || this.#handles.size > 0) return
    this.#tree?.close()
    this.#tree = undefined
  }
}

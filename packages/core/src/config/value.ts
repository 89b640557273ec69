import { type EtcdKitError, InvalidConfigValueError } from '../errors.js'
import type { Freshness, FreshnessEvents } from '../etcd/follow.js'
import type { Logger } from '../ops/logger.js'
import { recordConfigRefusal, recordConfigUpdate } from '../ops/metrics.js'
import { decodeEntry, type TreeEntry } from './entry.js'
import { runSchema, type StandardSchemaV1 } from './schema.js'
import type { ConfigTree } from './tree.js'
import { ConfigView } from './view.js'

/** How a config value's text becomes a value. */
export interface ConfigValueOptions<T> {
  /**
   * Turns the stored text into the value: `Number`, `JSON.parse`, a schema's parse
   * (`(text) => schema.parse(JSON.parse(text))`) or any function. A throw, `undefined` or `NaN` refuses the
   * text. @default the text itself (a string)
   */
  parse?: (text: string) => T
  /** Checks a parsed value; throwing or returning `false` refuses it (any other result accepts). @default every value is accepted */
  validate?: (value: T) => unknown
  /**
   * The value while neither the service's key nor the shared key exists. Without one, `current` is
   * `undefined` then. @default undefined
   */
  default?: T
}

/** A config value typed and checked by a Standard Schema (zod, valibot, arktype, ...). */
export interface ConfigSchemaOptions<S extends StandardSchemaV1> {
  /**
   * Checks, and may transform, what `parse` returned (the text itself without `parse`): its output is the
   * value, and its issues are reported when it refuses. It must validate synchronously (`current` is a
   * property read): a schema whose validation returns a promise refuses every value.
   */
  schema: S
  /** Turns the text into the schema's input, e.g. `JSON.parse`. @default the text itself */
  parse?: (text: string) => unknown
  /** A further check of the schema's output; throwing or returning `false` refuses it. @default none */
  validate?: (value: StandardSchemaV1.InferOutput<S>) => unknown
  /** The value while neither key exists. @default undefined */
  default?: StandardSchemaV1.InferOutput<S>
}

/** Where a new `current` came from. */
export interface ConfigChange {
  /** The etcd key (namespace-relative, e.g. `config/orders/rate-limit`), or `undefined` for the default. */
  key: string | undefined
  /** The text it was parsed from, or `undefined` for the default. */
  text: string | undefined
  /** The etcd revision of the change (decimal string). */
  revision: string
}

export interface ConfigValueEvents<T> extends FreshnessEvents {
  /** `current` changed (fires after it is set); never for a refused value. */
  change: [value: T, change: ConfigChange]
  /** The text now in force was refused by `parse` or `validate`; `current` keeps the last good value. */
  invalid: [error: InvalidConfigValueError, text: string]
  /**
   * The config cannot be read any more (permission denied, authentication failed): `current` is no longer
   * kept current. Emitted only when listened to (an unheard `error` would throw).
   */
  error: [error: EtcdKitError]
  close: []
}

type Issues = InvalidConfigValueError['issues']
type Read<T> = { ok: true; value: T } | { ok: false; error: InvalidConfigValueError }

const UNSEEN = Symbol('unseen')

/** How far back a reader looks through a key's history for its newest good version. */
const LOOK_BACK_VERSIONS = 100

/** A version of the key in force: which life of the key (its create revision), and which version in it. */
interface Looked {
  key: string
  createRevision: string
  version: number
}

/**
 * A live configuration value: `current` is always the last good value (a plain property read), kept current
 * from the kit's one config watch. With a service, `config/{service}/{key}` overrides `config/{key}`; with
 * neither key present, `current` is the default (or `undefined` when there is none). Text that `parse` or
 * `validate` refuses fires `invalid` and leaves `current` as it was.
 *
 * The rule for refused text: `current` is the newest good version of the key in force (by etcd revision,
 * within the key's current life: since it was last created). A reader that saw every version knows it; a
 * reader that missed some (it read the key fresh: first read, or a read after its watch was compacted) and
 * finds the text in force refused reads the key's history back (up to 100 versions) for the newest good
 * one, so it agrees with readers that saw them all. When that history was compacted away, or the key has
 * no good version in its current life, it keeps the last good value it saw itself. `revision` says which
 * etcd revision `current` came from, so a disagreement between readers can be seen.
 */
export class ConfigValue<T> extends ConfigView<ConfigValueEvents<T>> implements AsyncIterable<T>, Freshness {
  /** The key, relative to the config prefix. */
  readonly key: string
  /** The last good value: the one in force, or the default, never a refused one. A property read, no I/O. */
  readonly current: T
  /**
   * The etcd revision (mod revision, decimal) of the version `current` was parsed from; `undefined` while
   * `current` is the default.
   */
  readonly revision: string | undefined = undefined
  readonly #log: Logger
  readonly #prefix: string
  readonly #shared: string
  readonly #override: string | undefined
  readonly #parse: ((text: string) => unknown) | undefined
  readonly #schema: StandardSchemaV1<unknown, T> | undefined
  readonly #validate: ((value: T) => unknown) | undefined
  readonly #default: T
  /** The text last looked at (`undefined`: no key), so an unchanged text is neither parsed nor reported again. */
  #seen: string | undefined | typeof UNSEEN = UNSEEN
  /** The text `current` was parsed from (`undefined`: the default). */
  #good: string | undefined = undefined
  /** The last version of the key in force this handle looked at (`undefined`: no key in force). */
  #looked: Looked | undefined
  /** Bumped on every update: a look back through history applies only if nothing changed meanwhile. */
  #updates = 0

  /** @internal created by `kit.config.value()` */
  constructor(
    tree: ConfigTree,
    log: Logger,
    key: string,
    service: string | undefined,
    options: ConfigValueOptions<T> | ConfigSchemaOptions<StandardSchemaV1<unknown, T>>,
    release: () => void,
  ) {
    super(tree, release, `config value ${JSON.stringify(key)}`)
    this.key = key
    this.#log = log
    this.#prefix = tree.prefix
    this.#shared = key
    this.#override = service === undefined ? undefined : `${service}/${key}`
    this.#parse = options.parse
    this.#schema = 'schema' in options ? options.schema : undefined
    this.#validate = options.validate
    this.#default = options.default as T
    this.current = this.#default
    const keys = this.#override === undefined ? [this.#shared] : [this.#shared, this.#override]
    this.subscribe(tree.onKeys(keys, (revision) => this.#update(revision, true)))
    this.subscribe(
      tree.onError((error) => {
        if (this.listenerCount('error') > 0) this.emit('error', error)
      }),
    )
    // already mirrored: `current` is right at once, and an `invalid` is reported once listeners exist
    this.whenLoaded((emit) => this.#update(undefined, emit))
  }

  /** Yields `current` once the config is read, then every new value, until the handle is closed. */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return this.currentValues(() => this.current)
  }

  /** Re-reads the key in force from the mirror; `emit` is false only while the constructor runs. */
  #update(revision: string | undefined, emit: boolean) {
    const override = this.#override === undefined ? undefined : this.tree.entries.get(this.#override)
    const entry = override ?? this.tree.entries.get(this.#shared)
    const text = entry?.text
    const key = entry ? this.#prefix + (override ? this.#override : this.#shared) : undefined
    const looked = this.#looked
    this.#looked =
      entry && key ? { key, createRevision: entry.createRevision, version: entry.version } : undefined
    this.#updates++
    if (text === this.#seen && entry?.utf8 !== false) return
    this.#seen = text
    let value: T
    if (entry === undefined || key === undefined) {
      value = this.#default
    } else {
      const read = this.#read(key, entry)
      if (!read.ok) {
        this.#log.warn(
          {
            key,
            revision: entry.revision,
            text: entry.text,
            issues: read.error.issues,
            err: read.error.cause ?? read.error,
          },
          'config value refused; keeping the last good value',
        )
        recordConfigRefusal(this.key)
        if (emit) this.emit('invalid', read.error, entry.text)
        else queueMicrotask(() => this.emit('invalid', read.error, entry.text))
        // versions of this life of the key this handle never saw may hold a newer good value
        const continuous =
          looked?.key === key &&
          looked.createRevision === entry.createRevision &&
          looked.version + 1 >= entry.version
        if (!continuous) void this.#lookBack(key, entry, looked)
        return
      }
      value = read.value
    }
    this.#set(value, text, entry?.revision, emit, key, revision)
  }

  #set(
    value: T,
    text: string | undefined,
    from: string | undefined,
    emit: boolean,
    key: string | undefined,
    revision: string | undefined,
  ) {
    ;(this as { revision: string | undefined }).revision = from
    if (text === this.#good) return // back to the text `current` already holds
    this.#good = text
    ;(this as { current: T }).current = value
    this.version++
    if (emit) recordConfigUpdate(this.key)
    if (emit) this.emit('change', value, { key, text, revision: revision ?? from ?? '0' })
  }

  /**
   * Reads the history of `key` back from the refused `entry` for its newest good version in the same life
   * of the key, down to the versions this handle has seen itself (`looked`): it holds those already.
   */
  async #lookBack(key: string, entry: TreeEntry, looked: Looked | undefined) {
    const updates = this.#updates
    const seen = looked?.key === key && looked.createRevision === entry.createRevision ? looked.version : 0
    let at = BigInt(entry.revision) - 1n
    try {
      for (let step = 0; step < LOOK_BACK_VERSIONS && at >= BigInt(entry.createRevision); step++) {
        const res = await this.tree.ks.kv.range({ key: this.tree.ks.key(key), revision: at.toString() })
        const kv = res.kvs[0]
        if (kv === undefined || kv.create_revision !== entry.createRevision) return // no older version in this life
        const older = decodeEntry(kv)
        if (older.version <= seen) return // this handle saw it: `current` is already the newest good value
        const read = this.#read(key, older)
        if (read.ok) {
          if (this.#updates !== updates || this.isClosed) return // the key moved on meanwhile
          this.#log.info(
            { key, revision: older.revision, refused: entry.revision },
            'config value refused; using the newest good version from the key history',
          )
          this.#set(read.value, older.text, older.revision, true, key, older.revision)
          return
        }
        at = BigInt(older.revision) - 1n
      }
    } catch (err) {
      // compacted (or etcd unavailable): the newer good versions cannot be known
      this.#log.warn(
        { key, err, revision: this.revision },
        'config value refused and its history is not available; keeping the last good value this reader saw',
      )
    }
  }

  #read(key: string, entry: TreeEntry): Read<T> {
    const refuse = (reason: string, cause?: unknown, issues?: Issues): Read<T> => ({
      ok: false,
      error: new InvalidConfigValueError(key, entry.text, reason, cause, {
        revision: entry.revision,
        issues,
      }),
    })
    if (!entry.utf8) return refuse('the value is not UTF-8 text')
    let value: T
    try {
      value = (this.#parse ? this.#parse(entry.text) : entry.text) as T
    } catch (err) {
      return refuse(`parse threw: ${err instanceof Error ? err.message : String(err)}`, err)
    }
    if (value === undefined || (typeof value === 'number' && Number.isNaN(value)))
      return refuse(`parse returned ${String(value)}`)
    if (this.#schema) {
      const checked = runSchema(this.#schema, value)
      if (!checked.ok) return refuse(checked.reason, checked.cause, checked.issues)
      value = checked.value
    }
    if (this.#validate) {
      try {
        if (this.#validate(value) === false) return refuse('validate returned false')
      } catch (err) {
        return refuse(`validate threw: ${err instanceof Error ? err.message : String(err)}`, err)
      }
    }
    return { ok: true, value }
  }
}

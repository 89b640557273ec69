// A whole config subtree as one typed object, replaced only as a whole and only on a consistent mirror.
import { InvalidConfigValueError } from '../errors.js'
import type { Freshness, FreshnessEvents } from '../etcd/follow.js'
import type { Logger } from '../ops/logger.js'
import { runSchema, type StandardSchemaV1 } from './schema.js'
import type { ConfigTree } from './tree.js'
import { ConfigView } from './view.js'

/** A subtree as plain data: `db/pool/max` under `db/` becomes `{ pool: { max: '…' } }` (text leaves, or what `parse` made). */
export interface ConfigTreeObject {
  [key: string]: unknown
}

/** How a subtree becomes a value. */
export interface ConfigObjectOptions<T> {
  /**
   * Checks, and may transform, the subtree as a whole (leaves are text unless `parse` says otherwise):
   * zod, valibot, arktype, ... Synchronous only. @default no schema (the plain object)
   */
  schema?: StandardSchemaV1<unknown, T>
  /** Turns each leaf's text into its value, e.g. `JSON.parse`; a throw refuses the whole subtree. @default the text */
  parse?: (text: string) => unknown
  /** The value while the subtree is empty. @default undefined */
  default?: T
}

/** Where a new `current` came from. */
export interface ConfigObjectChange {
  /** The etcd revision the subtree was read at: every key of it as of that revision. */
  revision: string
  /** The keys the value was built from (relative to the config prefix), in key order; empty for the default. */
  keys: string[]
}

export interface ConfigObjectEvents<T> extends FreshnessEvents {
  /** `current` was replaced, as a whole (fires after it is set). */
  change: [value: T, change: ConfigObjectChange]
  /** The subtree now in etcd was refused (a leaf, the shape or the schema); `current` keeps the last good value. */
  invalid: [error: InvalidConfigValueError]
  close: []
}

const byKey = ([a]: [string, unknown], [b]: [string, unknown]) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Every key under `{configPrefix}{prefix}` as ONE object: built from the kit's config mirror only after a
 * whole watch response (one etcd txn's changes arrive together, at one revision) or a whole read has been
 * applied, validated as a whole, and swapped in at once. A reader never sees half of a change written in
 * one txn (`kit.config.setMany`). `current` is the last good object, or the default.
 */
export class ConfigObject<T>
  extends ConfigView<ConfigObjectEvents<T>>
  implements AsyncIterable<T>, Freshness
{
  /** The subtree, relative to the config prefix (`db/`; "" for the whole config). */
  readonly prefix: string
  /** The last good value: never a refused one. A property read, no I/O. */
  readonly current: T
  /** The revision `current` was read at (`undefined`: the default, before any value). */
  revision: string | undefined = undefined
  readonly #log: Logger
  readonly #options: ConfigObjectOptions<T>
  /** A key of the subtree changed since the last batch. */
  #dirty = false
  /** The subtree's texts last looked at, and the ones `current` was built from (`''`: empty). */
  #seen: string | undefined = undefined
  #good = ''

  /** @internal created by `kit.config.object()` */
  constructor(
    tree: ConfigTree,
    log: Logger,
    prefix: string,
    options: ConfigObjectOptions<T>,
    release: () => void,
  ) {
    super(tree, release, `config object ${JSON.stringify(prefix)}`)
    this.prefix = prefix
    this.#log = log
    this.#options = options
    this.current = options.default as T
    this.subscribe(
      tree.onSubtree(prefix, () => {
        this.#dirty = true
      }),
    )
    this.subscribe(
      tree.onBatch((revision) => {
        if (!this.#dirty) return
        this.#dirty = false
        this.#update(revision, true)
      }),
    )
    this.whenLoaded((emit) => this.#update(undefined, emit))
  }

  /** Yields `current` once the config is read, then every new value, until closed. */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return this.currentValues(() => this.current)
  }

  #update(batchRevision: string | undefined, emit: boolean) {
    const entries = [...this.tree.entries].filter(([key]) => key.startsWith(this.prefix)).sort(byKey)
    const texts = JSON.stringify(entries.map(([key, e]) => [key, e.text]))
    const sig = entries.length === 0 ? '' : texts
    if (sig === this.#seen && entries.every(([, e]) => e.utf8)) return
    this.#seen = sig
    let top = 0n
    for (const [, e] of entries) if (BigInt(e.revision) > top) top = BigInt(e.revision)
    const revision = batchRevision ?? top.toString()
    let value: T
    if (entries.length === 0) {
      value = this.#options.default as T
    } else {
      const key = this.tree.prefix + this.prefix
      const refuse = (reason: string, cause?: unknown, issues?: InvalidConfigValueError['issues']) => {
        const error = new InvalidConfigValueError(key, texts, reason, cause, { revision, issues })
        this.#log.warn(
          { key, revision, issues: error.issues, err: cause ?? error },
          'config subtree refused; keeping the last good value',
        )
        if (emit) this.emit('invalid', error)
        else queueMicrotask(() => this.emit('invalid', error))
      }
      const built = this.#build(entries)
      if (!built.ok) return refuse(built.reason, built.cause)
      value = built.value as T
      if (this.#options.schema) {
        const checked = runSchema(this.#options.schema, built.value)
        if (!checked.ok) return refuse(checked.reason, checked.cause, checked.issues)
        value = checked.value
      }
    }
    if (sig === this.#good) return // back to what `current` already holds
    this.#good = sig
    ;(this as { current: T }).current = value
    this.revision = entries.length === 0 ? undefined : revision
    this.version++
    if (emit) this.emit('change', value, { revision, keys: entries.map(([key]) => key) })
  }

  #build(
    entries: Array<[string, { text: string; utf8: boolean }]>,
  ): { ok: true; value: ConfigTreeObject } | { ok: false; reason: string; cause?: unknown } {
    const root: ConfigTreeObject = {}
    // the objects made here for subtrees, as opposed to objects a leaf's `parse` returned
    const subtrees = new Set<unknown>()
    for (const [key, entry] of entries) {
      if (!entry.utf8) return { ok: false, reason: `${JSON.stringify(key)} is not UTF-8 text` }
      const path = key.slice(this.prefix.length).split('/')
      let node = root
      for (const [i, segment] of path.entries()) {
        if (i === path.length - 1) {
          if (subtrees.has(node[segment]))
            return { ok: false, reason: `${JSON.stringify(key)} is both a value and a subtree` }
          let leaf: unknown = entry.text
          if (this.#options.parse) {
            try {
              leaf = this.#options.parse(entry.text)
            } catch (err) {
              return {
                ok: false,
                reason: `parse threw on ${JSON.stringify(key)}: ${err instanceof Error ? err.message : String(err)}`,
                cause: err,
              }
            }
          }
          node[segment] = leaf
          break
        }
        const next = node[segment]
        if (next !== undefined && !subtrees.has(next)) {
          const leaf = this.prefix + path.slice(0, i + 1).join('/')
          return { ok: false, reason: `${JSON.stringify(leaf)} is both a value and a subtree` }
        }
        if (next === undefined) {
          const child: ConfigTreeObject = {}
          subtrees.add(child)
          node[segment] = child
          node = child
        } else node = next as ConfigTreeObject
      }
    }
    return { ok: true, value: root }
  }
}

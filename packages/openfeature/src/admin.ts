// Writing flags: each definition checked against flagd's schema, then written through core's config writer.
import {
  type Config,
  ConfigConflictError,
  type ConfigRevision,
  type ConfigRollback,
  type EtcdKit,
  EtcdUnavailableError,
  InvalidArgumentError,
  InvalidConfigValueError,
} from '@etcdkit/core'
import { checkKeys, checkMs, isPlainObject, prefixConfig, show } from '@etcdkit/core/integration'
import {
  checkFlagKey,
  compileFlag,
  describeError,
  EVALUATORS_KEY,
  type FlagDefinition,
  type FlagEvaluators,
  flagsPrefix,
  parseDefinition,
  parseEvaluators,
} from './definition.js'

export interface FlagAdminOptions {
  /** Where the flags live, relative to the kit's namespace (as the provider's `prefix`). @default "flags/" */
  prefix?: string
  /** How long `list()` waits for etcd to answer its read (ms); every other call is one etcd call, bounded by the kit's `callTimeout`. @default 10_000 */
  timeout?: number
}

/** Who is writing (recorded beside the value: `history` shows it). */
export interface FlagWriteOptions {
  /** A user, a tool, a deploy id. @default none: only host, pid and service are recorded */
  writer?: string
}

/** One flag as stored: its key, its definition (or why it is not one) and the revision that wrote it. */
export interface FlagEntry {
  key: string
  /** The definition when it is valid; `undefined` when it is not (see `error`). */
  definition: FlagDefinition | undefined
  /** Why the stored text is not a valid flagd definition. */
  error: string | undefined
  /** The stored text. */
  text: string
  revision: string
}

/** One value a flag held, as etcd keeps it: core's `ConfigRevision` with the definition parsed. */
export interface FlagRevision extends ConfigRevision {
  /** The definition (`undefined` when the text was not JSON). */
  definition: FlagDefinition | undefined
}

/** A percentage rollout: `percent` of targeting keys get `true`, the same keys as the percentage grows. */
export interface RolloutOptions extends FlagWriteOptions {
  /** What a rollout buckets by: a context property. @default the targetingKey (flagd's default: flag key + targetingKey) */
  by?: string
}

function checkOptions(options: object | undefined, allowed: readonly string[], what: string) {
  if (options === undefined) return
  if (!isPlainObject(options as unknown))
    throw new InvalidArgumentError(`invalid options ${show(options)} for ${what}`)
  checkKeys(options, allowed, what)
}

/** How many times `enable`/`disable` read again and retry when the flag changed between read and write. */
const STATE_ATTEMPTS = 5

/**
 * Reads and writes flag definitions through core's config machinery on the flags prefix (`prefixConfig`):
 * one key per flag, each write with a writer record and a guarded rollback (core's config writer and history). Every definition is checked against flagd's
 * JSON schema (the copy flagd-core ships) and compiled by flagd-core before it is written, so the
 * provider never meets a definition written here that it must refuse.
 */
export class FlagAdmin {
  readonly prefix: string
  readonly #kit: EtcdKit
  readonly #flags: Config
  readonly #timeout: number

  constructor(kit: EtcdKit, options?: FlagAdminOptions) {
    if (typeof kit !== 'object' || kit === null || typeof kit.config?.set !== 'function')
      throw new InvalidArgumentError(`invalid kit ${show(typeof kit)}: expected an EtcdKit`)
    checkOptions(options, ['prefix', 'timeout'], 'FlagAdmin')
    this.#kit = kit
    this.#timeout = checkMs(options?.timeout ?? 10_000, 'timeout', true)
    this.prefix = flagsPrefix(options?.prefix)
    this.#flags = prefixConfig(kit, this.prefix)
  }

  /** The etcd key of flag `key`, relative to the kit's namespace. */
  keyOf(key: string): string {
    return `${this.prefix}${key}`
  }

  /** Every flag stored, in key order (invalid ones too, with `error`). */
  async list(): Promise<FlagEntry[]> {
    const watch = this.#flags.watch()
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        watch.ready,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new EtcdUnavailableError(
                  `listing the flags under ${show(this.keyOf(''))}: etcd did not answer within ${this.#timeout} ms`,
                ),
              ),
            this.#timeout,
          )
        }),
      ])
      const evaluators = await this.#evaluators()
      const out: FlagEntry[] = []
      const revision = watch.syncedRevision
      for (const [key, text] of [...watch.snapshot()].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (key === EVALUATORS_KEY || key.includes('/')) continue
        out.push(this.#entry(key, text, revision, evaluators))
      }
      return out
    } finally {
      clearTimeout(timer)
      watch.close()
    }
  }

  /** One flag as stored, or `undefined` when there is no such key. */
  async get(key: string): Promise<FlagEntry | undefined> {
    checkFlagKey(key)
    // one read: the text and the revision that wrote it, together
    const [now] = await this.#flags.history(key, { limit: 1 })
    if (now === undefined) return undefined
    return this.#entry(key, now.value, now.revision, await this.#evaluators())
  }

  /**
   * Writes the definition of `key` once flagd's schema and flagd-core accept it (else rejects with an
   * `InvalidConfigValueError` naming what is wrong, and writes nothing). Resolves with the revision.
   */
  async set(key: string, definition: FlagDefinition, options?: FlagWriteOptions): Promise<string> {
    checkFlagKey(key)
    checkOptions(options, ['writer'], 'FlagAdmin.set')
    return this.#write(key, definition, options)
  }

  /** Checks and writes `definition`; with `expect`, only if the key's mod revision is still that one. */
  async #write(
    key: string,
    definition: FlagDefinition,
    options: FlagWriteOptions | undefined,
    expect?: string,
  ): Promise<string> {
    const text = JSON.stringify(definition)
    if (text === undefined)
      throw new InvalidArgumentError(`invalid definition ${show(definition)} for flag ${show(key)}`)
    try {
      compileFlag(key, definition, await this.#evaluators())
    } catch (err) {
      throw new InvalidConfigValueError(this.keyOf(key), text, describeError(err), err)
    }
    return this.#flags.set(key, text, { ...options, ...(expect === undefined ? {} : { expect }) })
  }

  /** A boolean flag, on or off for everyone (variants `on`/`off`). */
  setBoolean(key: string, on: boolean, options?: FlagWriteOptions): Promise<string> {
    return this.set(key, booleanFlag(on), options)
  }

  /**
   * A boolean flag on for `percent` % of targeting keys (0 to 100, in steps of 0.01): the keys that are on
   * stay on as the percentage grows (flagd's fractional buckets, `on` first); 100 writes a plain `on`.
   */
  rollout(key: string, percent: number, options?: RolloutOptions): Promise<string> {
    checkOptions(options, ['writer', 'by'], 'FlagAdmin.rollout')
    const { by, ...write } = options ?? {}
    return this.set(key, rolloutFlag(percent, by), write)
  }

  /** Sets `state` to ENABLED (the definition otherwise unchanged). */
  enable(key: string, options?: FlagWriteOptions): Promise<string> {
    return this.#setState(key, 'ENABLED', options)
  }

  /** Sets `state` to DISABLED: evaluations get the caller's default value, reason DISABLED. */
  disable(key: string, options?: FlagWriteOptions): Promise<string> {
    return this.#setState(key, 'DISABLED', options)
  }

  /** Deletes the flag; evaluations then get FLAG_NOT_FOUND (the caller's default). Resolves whether it existed. */
  async delete(key: string): Promise<boolean> {
    checkFlagKey(key)
    return this.#flags.delete(key)
  }

  /** The definitions etcd still keeps of `key`, newest first, with who wrote each. */
  async history(key: string, options?: { limit?: number }): Promise<FlagRevision[]> {
    checkFlagKey(key)
    checkOptions(options, ['limit'], 'FlagAdmin.history')
    const revisions = await this.#flags.history(key, options)
    return revisions.map((r) => {
      let definition: FlagDefinition | undefined
      try {
        definition = parseDefinition(r.value) as FlagDefinition
      } catch {
        definition = undefined
      }
      return { ...r, definition }
    })
  }

  /**
   * Writes back the definition `key` held at `revision` (a `history` entry), guarded: refused with a
   * `ConfigConflictError` if the flag changed since it was read (or since `expect`). A definition that
   * flagd's schema refuses is not written back.
   */
  async rollback(
    key: string,
    revision: string,
    options?: FlagWriteOptions & { expect?: string },
  ): Promise<ConfigRollback> {
    checkFlagKey(key)
    checkOptions(options, ['writer', 'expect'], 'FlagAdmin.rollback')
    // the definition at that revision, read at it (one range; core's config has no read-at-revision)
    let old: string | null = null
    if (/^[1-9]\d*$/.test(revision)) {
      try {
        old = await this.#kit.client
          .get(this.#kit.namespace + this.keyOf(key))
          .revision(revision)
          .string()
      } catch {
        old = null // compacted, or etcd unreachable: core's rollback below says which
      }
    }
    if (old !== null) {
      try {
        compileFlag(key, parseDefinition(old), await this.#evaluators())
      } catch (err) {
        throw new InvalidConfigValueError(this.keyOf(key), old, describeError(err), err, { revision })
      }
    }
    // an unknown revision is left to core's rollback, which says why it cannot be read
    return this.#flags.rollback(key, revision, options)
  }

  /**
   * Read, modify, write, guarded: the write applies only if the flag's mod revision is still the one read
   * (one txn), so a definition written meanwhile is never overwritten with the old one plus `state`; it is
   * read again and the state applied to it, up to `STATE_ATTEMPTS` times, then a `ConfigConflictError`.
   */
  async #setState(key: string, state: 'ENABLED' | 'DISABLED', options?: FlagWriteOptions): Promise<string> {
    checkFlagKey(key)
    checkOptions(options, ['writer'], state === 'ENABLED' ? 'FlagAdmin.enable' : 'FlagAdmin.disable')
    for (let attempt = 1; ; attempt++) {
      const entry = await this.get(key)
      if (!entry) throw new InvalidArgumentError(`no flag ${show(key)} (no key ${show(this.keyOf(key))})`)
      if (!entry.definition)
        throw new InvalidConfigValueError(
          this.keyOf(key),
          entry.text,
          `not a valid flag definition: ${entry.error}`,
        )
      try {
        return await this.#write(key, { ...entry.definition, state }, options, entry.revision)
      } catch (err) {
        if (!(err instanceof ConfigConflictError)) throw err
        if (attempt >= STATE_ATTEMPTS)
          throw new ConfigConflictError(
            this.keyOf(key),
            `flag ${show(key)} not ${state === 'ENABLED' ? 'enabled' : 'disabled'}: it changed between each read and write (${attempt} attempts); nothing was written`,
          )
      }
    }
  }

  async #evaluators(): Promise<FlagEvaluators | undefined> {
    const text = await this.#flags.get(EVALUATORS_KEY)
    if (text === undefined) return undefined
    try {
      return parseEvaluators(text)
    } catch (err) {
      throw new InvalidConfigValueError(this.keyOf(EVALUATORS_KEY), text, describeError(err), err)
    }
  }

  #entry(key: string, text: string, revision: string, evaluators: FlagEvaluators | undefined): FlagEntry {
    try {
      const definition = parseDefinition(text)
      compileFlag(key, definition, evaluators)
      return { key, definition: definition as FlagDefinition, error: undefined, text, revision }
    } catch (err) {
      return { key, definition: undefined, error: describeError(err), text, revision }
    }
  }
}

/** A boolean flag, on or off for everyone: variants `on` (true) and `off` (false). */
export function booleanFlag(on: boolean): FlagDefinition {
  if (typeof on !== 'boolean') throw new InvalidArgumentError(`invalid on ${show(on)}: expected a boolean`)
  return { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: on ? 'on' : 'off' }
}

/**
 * A boolean flag on for `percent` % of targeting keys, with flagd's `fractional` (weights in hundredths of
 * a percent, `on` first so the keys that are on stay on as the percentage grows). 0 and 100 need no rule.
 */
export function rolloutFlag(percent: number, by?: string): FlagDefinition {
  if (typeof percent !== 'number' || !Number.isFinite(percent) || percent < 0 || percent > 100)
    throw new InvalidArgumentError(`invalid percent ${show(percent)}: expected a number from 0 to 100`)
  if (by !== undefined && (typeof by !== 'string' || by === ''))
    throw new InvalidArgumentError(`invalid by ${show(by)}: expected a context property name`)
  const on = Math.round(percent * 100)
  if (on === 0 || on === 10_000) return booleanFlag(on === 10_000)
  const buckets = [
    ['on', on],
    ['off', 10_000 - on],
  ]
  return {
    state: 'ENABLED',
    variants: { on: true, off: false },
    defaultVariant: 'off',
    targeting: {
      fractional:
        by === undefined ? buckets : [{ cat: [{ var: '$flagd.flagKey' }, { var: by }] }, ...buckets],
    },
  }
}

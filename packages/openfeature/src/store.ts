// The flags in force, one per etcd key: the last good compiled definition of each, and why others are not.

import type { FeatureFlag, Storage } from '@openfeature/flagd-core'
import type { FlagMetadata } from '@openfeature/server-sdk'
import {
  compileFlag,
  describeError,
  EVALUATORS_KEY,
  type FlagEvaluators,
  parseDefinition,
  parseEvaluators,
} from './definition.js'
import { type InstanceKey, instanceReads } from './reads.js'

/** What is known of one flag key. */
export interface FlagState {
  /** The text last seen in etcd (`undefined` once deleted). */
  text: string | undefined
  /** The last good compiled definition, `undefined` while there is none. */
  good: FeatureFlag | undefined
  /** The etcd revision of the definition in force. */
  goodRevision: string | undefined
  /** Why the text last seen is refused (`undefined` when it is the one in force). */
  error: string | undefined
  /** The revision of the refused text. */
  errorRevision: string | undefined
  /** The revision of the deletion, once deleted. */
  deletedAt: string | undefined
}

/** The outcome of applying one change: which flag keys changed what they resolve to, and which were refused. */
export interface Applied {
  changed: string[]
  refused: Array<{ key: string; text: string; reason: string; revision: string }>
}

/**
 * flagd-core's `Storage`, filled key by key from etcd instead of from one document: `FlagdCore` evaluates
 * from it, so targeting, fractional, `$ref` and semver stay flagd-core's. A definition that does not
 * compile leaves the last good one in force.
 */
export class FlagStore implements Storage {
  readonly #states = new Map<string, FlagState>()
  readonly #good = new Map<string, FeatureFlag>()
  /**
   * The instance facts the targeting rule in force of each flag may read (only flags with a rule are
   * here, and only with the facts they read: the others get the caller's context as is).
   */
  readonly #reads = new Map<string, readonly InstanceKey[]>()
  #evaluators: FlagEvaluators | undefined
  #evaluatorsText: string | undefined

  /** Unused: definitions come from etcd one key at a time (`apply`). */
  setConfigurations(): string[] {
    throw new Error('the etcd flag store is filled from etcd, not from a flagd document')
  }

  getFlag(key: string): FeatureFlag | undefined {
    return this.#good.get(key)
  }

  getFlags(): Map<string, FeatureFlag> {
    return this.#good
  }

  getFlagSetMetadata(): FlagMetadata {
    return {}
  }

  /** The instance facts the rule in force of `key` may read; `undefined` when it reads none. */
  reads(key: string): readonly InstanceKey[] | undefined {
    return this.#reads.get(key)
  }

  /** What is known of `key` (undefined: never seen). */
  state(key: string): FlagState | undefined {
    return this.#states.get(key)
  }

  /** Every flag key seen, with its state. */
  states(): ReadonlyMap<string, FlagState> {
    return this.#states
  }

  /**
   * Applies the text of `key` at `revision` (`undefined`: deleted). The `$evaluators` key recompiles every
   * flag, since any of them may refer to it.
   */
  apply(key: string, text: string | undefined, revision: string): Applied {
    const out: Applied = { changed: [], refused: [] }
    if (key === EVALUATORS_KEY) {
      if (text === this.#evaluatorsText) return out
      let evaluators: FlagEvaluators | undefined
      try {
        evaluators = text === undefined ? undefined : parseEvaluators(text)
      } catch (err) {
        out.refused.push({ key, text: text ?? '', reason: describeError(err), revision })
        return out
      }
      this.#evaluators = evaluators
      this.#evaluatorsText = text
      for (const [flagKey, state] of this.#states) {
        if (state.text === undefined) continue
        this.#compile(flagKey, state, state.text, revision, out, true)
      }
      return out
    }
    let state = this.#states.get(key)
    if (text === undefined) {
      if (!state || state.text === undefined) return out
      state.text = undefined
      state.deletedAt = revision
      state.error = undefined
      state.errorRevision = undefined
      if (state.good) {
        state.good = undefined
        state.goodRevision = undefined
        this.#good.delete(key)
        this.#reads.delete(key)
        out.changed.push(key)
      }
      return out
    }
    if (state?.text === text) return out
    state ??= {
      text,
      good: undefined,
      goodRevision: undefined,
      error: undefined,
      errorRevision: undefined,
      deletedAt: undefined,
    }
    this.#states.set(key, state)
    state.text = text
    state.deletedAt = undefined
    this.#compile(key, state, text, revision, out, false)
    return out
  }

  #compile(key: string, state: FlagState, text: string, revision: string, out: Applied, again: boolean) {
    let flag: FeatureFlag
    let definition: unknown
    try {
      definition = parseDefinition(text)
      flag = compileFlag(key, definition, this.#evaluators)
    } catch (err) {
      const reason = describeError(err)
      // recompiling for new evaluators: report only what newly fails
      if (!again || state.error !== reason) out.refused.push({ key, text, reason, revision })
      state.error = reason
      state.errorRevision = revision
      return
    }
    state.error = undefined
    state.errorRevision = undefined
    if (state.good?.hash !== flag.hash) out.changed.push(key)
    state.good = flag
    if (!again || state.goodRevision === undefined) state.goodRevision = revision
    this.#good.set(key, flag)
    const targeting = (definition as { targeting?: unknown }).targeting
    const reads =
      typeof targeting === 'object' && targeting !== null && Object.keys(targeting).length > 0
        ? instanceReads(targeting, this.#evaluators)
        : []
    if (reads.length > 0) this.#reads.set(key, reads)
    else this.#reads.delete(key)
  }
}

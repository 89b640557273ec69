// One flag's flagd definition: checked against flagd's schema and compiled by @openfeature/flagd-core.
import { InvalidArgumentError } from '@etcdkit/core'
import { checkConfigKey, show } from '@etcdkit/core/integration'
import { type FeatureFlag, MemoryStorage } from '@openfeature/flagd-core'
import type { FlagValue, JsonValue, Logger } from '@openfeature/server-sdk'

/** A flag definition in flagd's format: one entry of the `flags` object of a flagd flag-definition document. */
export interface FlagDefinition {
  state: 'ENABLED' | 'DISABLED'
  /** The variant served when targeting matches nothing (or there is none). */
  defaultVariant: string
  /** Every value the flag can take, by variant name; all of one type (boolean, string, number or object). */
  variants: Record<string, FlagValue>
  /** A JsonLogic rule (flagd's operators: `fractional`, `sem_ver`, `starts_with`, `ends_with`) naming a variant. */
  targeting?: { [key: string]: JsonValue }
  /** Free metadata, returned with each evaluation (`flagMetadata`). */
  metadata?: Record<string, string | number | boolean>
}

/** Shared JsonLogic snippets a definition may use as `{ "$ref": "name" }` (flagd's `$evaluators`). */
export type FlagEvaluators = Record<string, JsonValue>

/** The key (below the flags prefix) holding the shared `$evaluators` object. */
export const EVALUATORS_KEY = '$evaluators'

/**
 * A flag key: a config key (core's rules: printable, well-formed text) of one segment, without "/" (each flag
 * is one etcd key directly below the prefix), and not `$evaluators` (that key holds the shared evaluators).
 */
export function checkFlagKey(key: unknown): string {
  checkConfigKey(key, 'flag key')
  const bad = (why: string) => new InvalidArgumentError(`invalid flag key ${show(key)}: ${why}`)
  if ((key as string).length > 256) throw bad('longer than 256 characters')
  if ((key as string).includes('/'))
    throw bad('a "/" would put it below another key; flag keys are one segment')
  if (key === EVALUATORS_KEY) throw bad('it is reserved for the shared $evaluators')
  return key as string
}

/** The flags prefix (relative to the config prefix), ending with "/"; checked by core's config-key rules. */
export function flagsPrefix(prefix: unknown = 'flags/'): string {
  if (prefix === '')
    throw new InvalidArgumentError(
      'invalid flags prefix "": the flags need a prefix of their own below the config prefix',
    )
  const withSlash = typeof prefix === 'string' && !prefix.endsWith('/') ? `${prefix}/` : prefix
  return checkConfigKey(withSlash, 'flags prefix', true)
}

const quiet: Logger = { error() {}, warn() {}, info() {}, debug() {} }

/**
 * Compiles one definition with flagd-core, strictly: the document `{ $evaluators, flags: { [key]: definition } }`
 * must pass flagd's JSON schema (flagd-core ships it precompiled) and flagd-core's own structural checks
 * (state, default variant among the variants). Returns the compiled flag, or throws an `Error` whose
 * message says what is wrong.
 */
export function compileFlag(
  key: string,
  definition: unknown,
  evaluators: FlagEvaluators | undefined,
  logger: Logger = quiet,
): FeatureFlag {
  const document = {
    ...(evaluators === undefined ? {} : { $evaluators: evaluators }),
    flags: { [key]: definition },
  }
  const storage = new MemoryStorage(logger)
  storage.setConfigurations(JSON.stringify(document), true)
  const flag = storage.getFlag(key)
  if (!flag) throw new Error(`flagd-core did not load flag ${show(key)}`)
  return flag
}

/** The definition's text parsed as JSON, or an `Error` saying why it is not. */
export function parseDefinition(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`)
  }
}

/** The shared evaluators' text parsed: a JSON object, or an `Error`. */
export function parseEvaluators(text: string): FlagEvaluators {
  const value = parseDefinition(text)
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error('expected a JSON object of named JsonLogic rules')
  return value as FlagEvaluators
}

/**
 * flagd-core's ParseError carries the schema's complaints as a JSON array after a colon: shown as
 * `path: message` lines (at most 3), so a log line or CLI error says what to fix in one glance.
 */
export function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : ''
  const at = message.indexOf(': [')
  if (at >= 0) {
    try {
      const issues = JSON.parse(message.slice(at + 2)) as Array<{ instancePath?: string; message?: string }>
      const lines = [...new Set(issues.map((i) => `${i.instancePath || '/'} ${i.message ?? ''}`.trim()))]
      const more = lines.length > 3 ? ` (and ${lines.length - 3} more)` : ''
      return `${message.slice(0, at)}: ${lines.slice(0, 3).join('; ')}${more}`
    } catch {
      // not the shape expected: shown as is below
    }
  }
  return `${message}${cause}`.replace(/\s+/g, ' ').slice(0, 1_000)
}

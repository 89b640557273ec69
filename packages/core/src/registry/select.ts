// Which instances of a service a client sends traffic to: a canary, a version pin, a zone, a drain.
import semver from 'semver'
import { InvalidArgumentError, show } from '../errors.js'
import { isPlainObject } from '../validate.js'
import type { Instance } from './instance.js'

/**
 * Instances a `ServiceClient` may send traffic to, by their registry metadata; every field given must
 * match. An instance with `weight: 0` is never selected (registered, receiving no traffic).
 */
export interface InstanceSelector {
  /** A semver range `metadata.version` must satisfy (`^1.4.0`, `>=2.0.0-0 <3`); no version never does. */
  version?: string
  /** Tags that must all be in `metadata.tags` (`['canary']`). */
  tags?: string[]
  /** `metadata.zone` must be this (unlike the client's `zone` option, which only prefers). */
  zone?: string
  /** Further `metadata` keys that must equal these values. */
  metadata?: Record<string, string | number | boolean>
}

/** `kit.service(name, { select })`: a selector object, or your own predicate. */
export type InstanceSelect = InstanceSelector | ((instance: Instance) => boolean)

const KEYS = new Set(['version', 'tags', 'zone', 'metadata'])

/** The predicate for `select`, checked up front (the message names the bad value). */
export function compileSelect(select: unknown): (instance: Instance) => boolean {
  if (select === undefined) return () => true
  if (typeof select === 'function') {
    const own = select as (instance: Instance) => boolean
    return (instance) => own(instance) === true
  }
  const bad = (what: string, value: unknown, why: string) =>
    new InvalidArgumentError(`invalid select${what} ${show(value)}: ${why}`)
  if (!isPlainObject(select))
    throw bad('', select, 'expected { version, tags, zone, metadata } or a function')
  for (const key of Object.keys(select)) {
    if (!KEYS.has(key))
      throw bad('', select, `unknown key ${show(key)} (known: version, tags, zone, metadata)`)
  }
  const { version, tags, zone, metadata } = select as InstanceSelector
  const checks: ((instance: Instance) => boolean)[] = []
  if (version !== undefined) {
    const range = typeof version === 'string' ? semver.validRange(version) : null
    if (range === null) throw bad('.version', version, 'expected a semver range such as "^1.4.0"')
    checks.push(({ metadata: m }) => {
      const v =
        typeof m.version === 'string'
          ? semver.valid(semver.coerce(m.version, { includePrerelease: true }))
          : null
      return v !== null && semver.satisfies(v, range, { includePrerelease: true })
    })
  }
  if (tags !== undefined) {
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))
      throw bad('.tags', tags, 'expected an array of strings')
    checks.push(({ metadata: m }) => Array.isArray(m.tags) && tags.every((t) => m.tags!.includes(t)))
  }
  if (zone !== undefined) {
    if (typeof zone !== 'string' || zone === '') throw bad('.zone', zone, 'expected a non-empty string')
    checks.push(({ metadata: m }) => m.zone === zone)
  }
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw bad('.metadata', metadata, 'expected a plain object')
    const entries = Object.entries(metadata)
    for (const [key, value] of entries) {
      if (!['string', 'number', 'boolean'].includes(typeof value))
        throw bad(`.metadata.${key}`, value, 'expected a string, number or boolean')
    }
    checks.push(({ metadata: m }) => entries.every(([key, value]) => m[key] === value))
  }
  return (instance) => checks.every((check) => check(instance))
}

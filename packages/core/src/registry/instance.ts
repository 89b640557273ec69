import { InvalidArgumentError, show } from '../errors.js'
import { checkAddress, checkJsonValue, checkText, isPlainObject } from '../validate.js'
import type { DialectName } from './dialects/dialect.js'

/** Metadata of a registered instance: the well-known fields, plus any user keys (JSON values). */
export interface InstanceMetadata {
  version?: string
  /**
   * Relative share of traffic, an integer from 0 to 1,000,000; 0 means registered but sent no traffic
   * (drain without deregistering). @default 1
   */
  weight?: number
  zone?: string
  protocol?: 'http' | 'https' | 'grpc'
  tags?: string[]
  [key: string]: unknown
}

/** One live instance of a service, as read from the registry. */
export interface Instance {
  readonly service: string
  /** The registry dialect it was read in (`etcd`: etcd's naming format). */
  readonly dialect: DialectName
  /** `host:port` (IPv6 as `[::1]:8080`). */
  readonly address: string
  /** The registry key, without the kit's namespace. */
  readonly key: string
  readonly metadata: Readonly<InstanceMetadata>
  /** `metadata.weight` (0: receives no traffic), or 1. */
  readonly weight: number
  /** The revision at which this value was written. */
  readonly modRevision: string
}

const PROTOCOLS = new Set(['http', 'https', 'grpc'])

/** Checks user metadata and returns a JSON-safe copy; the message names the bad field and value. */
export function checkMetadata(metadata: unknown): InstanceMetadata {
  if (metadata === undefined) return {}
  if (!isPlainObject(metadata))
    throw new InvalidArgumentError(`invalid metadata ${show(metadata)}: expected a plain object`)
  const bad = (field: string, why: string) =>
    new InvalidArgumentError(`invalid metadata.${field} ${show(metadata[field])}: ${why}`)
  const { version, weight, zone, protocol, tags } = metadata
  if (version !== undefined && typeof version !== 'string') throw bad('version', 'expected a string')
  if (
    weight !== undefined &&
    (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT)
  )
    throw bad('weight', 'expected an integer from 0 (no traffic) to 1000000')
  if (zone !== undefined && typeof zone !== 'string') throw bad('zone', 'expected a string')
  if (protocol !== undefined && !PROTOCOLS.has(protocol as string))
    throw bad('protocol', 'expected "http", "https" or "grpc"')
  if (tags !== undefined && (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')))
    throw bad('tags', 'expected an array of strings')
  // JSON.stringify silently drops functions and undefined, turns NaN into null and a Map into {}: refuse
  // instead, at any depth (undefined at the top level means "not set", as for the well-known fields)
  for (const [k, v] of Object.entries(metadata)) {
    if (k === '__proto__') throw bad(k, 'a key that readers would take for the prototype')
    checkText(k, 'metadata key')
    if (v !== undefined) checkJsonValue(v, `metadata.${k}`)
  }
  return JSON.parse(JSON.stringify(metadata)) as InstanceMetadata
}

/**
 * The value written for a registration: Go's naming/endpoints format (`Op` 0 = add), byte for byte what Go
 * writes. No metadata is `null`, as Go writes it, not `{}`: Go gRPC clients on etcd's resolver put Metadata
 * in a resolver.Address, which grpc-go hashes and compares, and any JSON object there panics them (etcd
 * issue 19700; seen here with etcd 3.4's resolver and grpc-go 1.33). Registrations that Go gRPC clients
 * dial must therefore carry no metadata.
 */
export function encodeEndpoint(address: string, metadata: InstanceMetadata): string {
  return JSON.stringify({
    Op: 0,
    Addr: address,
    Metadata: Object.keys(metadata).length === 0 ? null : metadata,
  })
}

export type DecodedEndpoint =
  | { kind: 'add'; address: string; metadata: InstanceMetadata }
  | { kind: 'delete' }
  | { kind: 'invalid'; reason: string }

/**
 * Reads a registry value: Go's `{"Op":0,"Addr":…,"Metadata":…}` (Op 1 is a delete), or the seed's bare
 * `host:port`. Anything else is `invalid`, with the reason.
 */
export function decodeEndpoint(raw: string): DecodedEndpoint {
  const text = raw.trim()
  if (!text.startsWith('{')) {
    try {
      return { kind: 'add', address: checkAddress(text, 'bare address value'), metadata: {} }
    } catch (err) {
      return { kind: 'invalid', reason: (err as Error).message }
    }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    return { kind: 'invalid', reason: `not JSON: ${(err as Error).message}` }
  }
  if (!isPlainObject(parsed)) return { kind: 'invalid', reason: 'not a JSON object' }
  const op = parsed.Op ?? 0
  if (op === 1) return { kind: 'delete' }
  if (op !== 0) return { kind: 'invalid', reason: `unknown Op ${show(op)}` }
  if (typeof parsed.Addr !== 'string' || parsed.Addr === '')
    return { kind: 'invalid', reason: 'no "Addr" string' }
  // the same check as a registration and a bare value: a hostile Addr ("[::1]:99999", userinfo
  // "a:1@b:2", full-width digits) is skipped and reported, never picked
  let address: string
  try {
    address = checkAddress(parsed.Addr, 'Addr')
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message }
  }
  const meta = parsed.Metadata
  if (meta !== undefined && meta !== null && !isPlainObject(meta)) {
    // Go allows any JSON as Metadata; keep it where a reader can still find it
    return { kind: 'add', address, metadata: { value: meta } }
  }
  const metadata = (meta ?? {}) as InstanceMetadata
  // JSON.parse makes "__proto__" an own key: drop it, or code that copies metadata would set a prototype
  if (Object.hasOwn(metadata, '__proto__')) Reflect.deleteProperty(metadata, '__proto__')
  const weight = badWeight(metadata.weight)
  if (weight) return { kind: 'invalid', reason: weight }
  return { kind: 'add', address, metadata }
}

/** The largest weight, on read as on write. */
const MAX_WEIGHT = 1_000_000

/**
 * Why a weight read from etcd is out of the bounds a registration may write (an integer 0..1000000), or
 * `undefined` when it is within them or absent. Such an entry is skipped, not clamped: another writer's
 * `1e308` clamped to 1000000 would still take all but one pick in a million beside weight-1 instances,
 * and a weight nobody could have registered says the value is not what a registration wrote.
 */
export function badWeight(weight: unknown): string | undefined {
  if (weight === undefined || weight === null) return undefined
  if (typeof weight === 'number' && Number.isInteger(weight) && weight >= 0 && weight <= MAX_WEIGHT)
    return undefined
  return `weight ${show(weight)} is out of bounds: expected an integer from 0 to ${MAX_WEIGHT}`
}

/** `metadata.weight` of a decoded entry (`decodeEndpoint` skipped any out of bounds), else 1. */
export function weightOf(metadata: InstanceMetadata): number {
  const w = metadata.weight
  return typeof w === 'number' && badWeight(w) === undefined ? w : 1
}

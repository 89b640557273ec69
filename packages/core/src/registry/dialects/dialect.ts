// What a registry dialect is: a pure codec (keys, values, lease policy, metadata mapping), and helpers they share.

import { InvalidArgumentError, show } from '../../errors.js'
import { checkAddress, isPlainObject } from '../../validate.js'
import type { InstanceMetadata } from '../instance.js'

/** The registry formats etcdkit reads and writes: etcd's own, and those of Go frameworks on etcd. */
export type DialectName = 'etcd' | 'go-zero' | 'kratos' | 'kitex' | 'hertz' | 'go-micro'

export const DIALECT_NAMES: readonly DialectName[] = [
  'etcd',
  'go-zero',
  'kratos',
  'kitex',
  'hertz',
  'go-micro',
]

/** Settings of the kit that a codec may depend on. */
export interface DialectContext {
  /** The kit's `registryPrefix` (the `etcd` dialect's root). */
  readonly registryPrefix: string
}

/**
 * What a reader will do with the address: call it over HTTP (the service client), over gRPC (the gRPC
 * resolver), or anything (`discover()`). A dialect whose instances list one endpoint per protocol (Kratos)
 * picks by it; the others ignore it.
 */
export type DialectPurpose = 'any' | 'http' | 'grpc'

/** One instance to write, as the kit registers it (already checked). */
export interface DialectInstance {
  readonly service: string
  /** `host:port`, IPv6 as `[::1]:8080`. */
  readonly address: string
  readonly metadata: InstanceMetadata
  /**
   * What the instance speaks, for dialects that say it outside the metadata (Kratos' endpoint schemes,
   * go-micro's node `protocol`): `RegisterOptions.protocol`, else `metadata.protocol`.
   */
  readonly protocol?: 'http' | 'https' | 'grpc' | undefined
}

/** What one stored value means to a reader of a dialect. */
export type DialectDecoded =
  | { readonly kind: 'instance'; readonly address: string; readonly metadata: InstanceMetadata }
  /** etcd's naming format can write a delete operation as a value (`Op: 1`). */
  | { readonly kind: 'delete' }
  /**
   * Readable, but not for this reader: another service sharing the prefix (Kratos filters by `name`), or an
   * instance without an endpoint of the scheme asked for. Skipped without a report, as the framework does.
   */
  | { readonly kind: 'other'; readonly reason: string }
  /** Not a value of this dialect: skipped and reported once, never misread. */
  | { readonly kind: 'unreadable'; readonly reason: string }

/** What a dialect carries over from an instance's metadata (for docs/POLYGLOT.md and the tests). */
export interface DialectCarries {
  readonly weight: boolean
  readonly zone: boolean
  readonly version: boolean
  /** `json`: any JSON values; `strings`: a string map (other values are written as text); `none`. */
  readonly metadata: 'json' | 'strings' | 'none'
  /** Whether a reader learns that the instance speaks TLS (a scheme such as `https`, `grpcs`). */
  readonly tls: boolean
}

/** How the framework itself leases its keys, and what etcdkit does instead. */
export interface DialectLease {
  /** The TTL the framework's own registrar uses, in seconds (etcdkit writes every dialect on the kit's lease). */
  readonly frameworkTtl: number
  /** The framework's own registrar revokes its lease on a graceful stop (else it deletes the key). */
  readonly frameworkRevokes: boolean
}

/**
 * A dialect's codec: pure functions, no I/O. `W` is its checked write options, `R` its checked read options.
 * Every method that reads etcd data returns a result, never throws; option checks throw
 * `InvalidArgumentError` naming the bad value.
 */
export interface DialectCodec<W, R> {
  readonly name: DialectName
  readonly lease: DialectLease
  readonly carries: DialectCarries
  /** How a second registration of one kit gets keys of its own (for the error refusing a clash). */
  readonly distinct: string
  /** Checks the write options (unknown keys refused) and fills the defaults for this instance. */
  writeOptions(raw: Record<string, unknown>, instance: DialectInstance): W
  /** Checks the read options (unknown keys refused) and fills the defaults. */
  readOptions(raw: Record<string, unknown>, service: string, purpose: DialectPurpose): R
  /** Whether `key()` depends on the lease (go-zero's default key): it changes with every new lease. */
  keyHasLease(options: W): boolean
  /** The key of the instance; `leaseId` is the decimal ID of the lease it is written on. */
  key(instance: DialectInstance, options: W, leaseId: string, ctx: DialectContext): string
  encode(instance: DialectInstance, options: W): string
  /** The prefix a reader of `service` reads (a range over it). */
  prefix(service: string, options: R, ctx: DialectContext): string
  decode(service: string, key: string, value: string, options: R): DialectDecoded
  /**
   * The root under which this dialect keeps every service, and the service a key under it names (for a
   * catalog of all services); `undefined` when the dialect has no common root (go-zero's keys are free).
   */
  catalog(
    ctx: DialectContext,
  ): { root: string; serviceOf(keyUnderRoot: string): string | undefined } | undefined
}

/** An optional string option: non-empty, and passing `problem` (which returns what is wrong, if anything). */
export function optionalString(
  raw: Record<string, unknown>,
  field: string,
  what: string,
  problem?: (s: string) => string | undefined,
): string | undefined {
  const v = raw[field]
  if (v === undefined) return undefined
  const why = typeof v !== 'string' || v === '' ? 'expected a non-empty string' : problem?.(v)
  if (why !== undefined) throw new InvalidArgumentError(`invalid ${what}.${field} ${show(v)}: ${why}`)
  return v as string
}

/** A `Record<string, string>` option (Kitex tags). */
export function optionalStringMap(
  raw: Record<string, unknown>,
  field: string,
  what: string,
): Map<string, string> {
  const v = raw[field]
  const out = new Map<string, string>()
  if (v === undefined) return out
  if (!isPlainObject(v))
    throw new InvalidArgumentError(`invalid ${what}.${field} ${show(v)}: expected an object of strings`)
  for (const [k, s] of Object.entries(v)) {
    if (typeof s !== 'string')
      throw new InvalidArgumentError(`invalid ${what}.${field}.${k} ${show(s)}: expected a string`)
    out.set(k, s)
  }
  return out
}

/**
 * Metadata as a string map, for the dialects that carry only strings (Kratos, Kitex and Hertz tags, go-micro
 * node metadata): strings as they are, `tags` joined with commas, numbers and booleans as text, anything
 * else as JSON text. Fields in `omit` are carried elsewhere by the dialect.
 */
export function metadataToStrings(
  metadata: InstanceMetadata,
  omit: readonly string[] = [],
): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of Object.entries(metadata)) {
    if (v === undefined || v === null || omit.includes(k)) continue
    if (typeof v === 'string') out.set(k, v)
    else if (k === 'tags' && Array.isArray(v)) out.set(k, v.join(','))
    else if (typeof v === 'number' || typeof v === 'boolean') out.set(k, String(v))
    else out.set(k, JSON.stringify(v))
  }
  return out
}

const PROTOCOLS = new Set(['http', 'https', 'grpc'])

/**
 * The inverse of `metadataToStrings` for values another writer made: checks that every value is a string
 * (else `undefined`: the caller reports the value unreadable), turns `weight` into a number and `tags` into
 * a list, and leaves out well-known fields it cannot use (a `weight` that is not a whole number, a
 * `protocol` other than http, https, grpc) rather than pass them on with the wrong type.
 */
export function metadataFromStrings(map: unknown): InstanceMetadata | undefined {
  if (map === null || map === undefined) return {}
  if (!isPlainObject(map)) return undefined
  const out: InstanceMetadata = {}
  for (const [k, v] of Object.entries(map)) {
    if (typeof v !== 'string') return undefined
    if (k === '__proto__') continue
    if (k === 'weight') {
      // a whole number out of bounds is passed on, for the reader's one bound check to skip and report
      if (/^\d{1,16}$/.test(v)) out.weight = Number(v)
    } else if (k === 'tags') {
      out.tags = v.split(',').filter((t) => t !== '')
    } else if (k === 'protocol') {
      if (PROTOCOLS.has(v)) out.protocol = v as 'http' | 'https' | 'grpc'
    } else {
      out[k] = v
    }
  }
  return out
}

/**
 * An address another writer stored: `host:port`, `[ipv6]:port`, or an IPv6 host without brackets (Kitex
 * writes `%s:%d`), which is bracketed. `undefined` when it is none of these.
 */
export function readAddress(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined
  let address = text
  const colon = text.lastIndexOf(':')
  if (!text.startsWith('[') && colon > 0 && text.slice(0, colon).includes(':'))
    address = `[${text.slice(0, colon)}]${text.slice(colon)}`
  try {
    return checkAddress(address)
  } catch {
    return undefined
  }
}

/** JSON text parsed to a plain object, or the reason it is not one. */
export function parseObject(value: string): Record<string, unknown> | string {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (err) {
    return `not JSON: ${(err as Error).message}`
  }
  return isPlainObject(parsed) ? parsed : 'not a JSON object'
}

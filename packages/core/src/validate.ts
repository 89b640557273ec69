import { isIP } from 'node:net'
import { InvalidArgumentError, show } from './errors.js'

const SERVICE_NAME = /^[A-Za-z0-9._-]{1,200}$/
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/

/** Service names: letters, digits, `.`, `_`, `-` (1 to 200 of them), not `.` or `..`. */
export function checkServiceName(name: unknown, what = 'service name'): string {
  if (typeof name !== 'string' || !SERVICE_NAME.test(name) || name === '.' || name === '..') {
    throw new InvalidArgumentError(
      `invalid ${what} ${show(name)}: use 1 to 200 letters, digits, '.', '_' or '-' (and not '.' or '..')`,
    )
  }
  return name
}

/** `host:port` with a hostname or IPv4 host, or `[ipv6]:port`; the port 1 to 65535. */
export function checkAddress(address: unknown, what = 'address'): string {
  // no closure per call: this runs for every registry value a view reads
  if (typeof address !== 'string') throw badAddress(what, address, 'expected a "host:port" string')
  let host: string
  let port: string
  if (address.startsWith('[')) {
    const close = address.indexOf(']')
    if (close < 0 || address[close + 1] !== ':') throw badAddress(what, address, 'expected "[ipv6]:port"')
    host = address.slice(1, close)
    port = address.slice(close + 2)
    if (isIP(host) !== 6) throw badAddress(what, address, `${show(host)} is not an IPv6 address`)
  } else {
    const colon = address.lastIndexOf(':')
    if (colon < 0) throw badAddress(what, address, 'expected "host:port"')
    host = address.slice(0, colon)
    port = address.slice(colon + 1)
    if (host.includes(':')) throw badAddress(what, address, 'an IPv6 host must be in brackets: "[::1]:8080"')
    if (!HOSTNAME.test(host))
      throw badAddress(what, address, `${show(host)} is not a host name or IPv4 address`)
  }
  const n = Number(port)
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65_535)
    throw badAddress(what, address, `port ${show(port)} is not in 1..65535`)
  return address
}

function badAddress(what: string, address: unknown, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`invalid ${what} ${show(address)}: ${why}`)
}

/** A lease TTL in whole seconds, from 2 (below that etcd raises it to its minimum anyway) up. */
export function checkTtl(ttl: unknown): number {
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 2 || ttl > 9_000_000_000) {
    throw new InvalidArgumentError(`invalid ttl ${show(ttl)}: expected whole seconds, at least 2`)
  }
  return ttl
}

/** The longest delay a Node timer takes: a longer one fires after 1 ms (with only a warning). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A duration in milliseconds: a finite number >= 0 (or > 0 when `positive`), at most 2^31 - 1 (~24.8 days). */
export function checkMs(value: unknown, what: string, positive = false): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (positive && value === 0) ||
    value > MAX_TIMER_MS
  ) {
    throw new InvalidArgumentError(
      `invalid ${what} ${show(value)}: expected a number of milliseconds${positive ? ' > 0' : ' >= 0'} and at most ${MAX_TIMER_MS} (a longer timer would fire at once)`,
    )
  }
  return value
}

/** Refuses keys of `options` that are not in `allowed` (a typo would otherwise be ignored silently). */
export function checkKeys(options: object, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key))
      throw new InvalidArgumentError(
        `unknown ${what} option ${show(key)}: expected ${allowed.length > 0 ? allowed.join(', ') : 'none'}`,
      )
  }
}

/** An optional AbortSignal. */
export function checkSignal(signal: unknown, what = 'signal'): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw new InvalidArgumentError(`invalid ${what} ${show(signal)}: expected an AbortSignal`)
  return signal
}

/**
 * A value JSON carries as it is: null, booleans, strings, finite numbers, arrays and plain objects of such
 * (no NaN that would become null, no Map that would become {}, no undefined that would vanish). `path` names
 * where the bad part is.
 */
export function checkJsonValue(value: unknown, path: string, depth = 0): void {
  const bad = (why: string) => new InvalidArgumentError(`invalid ${path} ${show(value)}: ${why}`)
  if (depth > 32) throw bad('nested too deeply')
  if (typeof value === 'string') {
    checkText(value, path)
    return
  }
  if (value === null || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw bad('not representable in JSON')
    return
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      checkJsonValue(v, `${path}[${i}]`, depth + 1)
    })
    return
  }
  if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      checkText(k, `key of ${path}`)
      checkJsonValue(v, `${path}.${k}`, depth + 1)
    }
    return
  }
  throw bad(
    'not representable in JSON (expected null, a boolean, string, finite number, array or plain object)',
  )
}

/** A surrogate not paired (with the `u` flag a pair is one code point, so only a lone one matches). */
const LONE_SURROGATE = /\p{Cs}/u

/**
 * Text that etcdkit writes to etcd as a value (a config value, an election proposal, a metadata string):
 * a string that survives UTF-8. A lone surrogate does not: etcd would store U+FFFD, and readers (ours, Go's)
 * would see another value than the one written. Every value-taking call checks through here, alike.
 */
export function checkText(value: unknown, what: string): string {
  if (typeof value !== 'string')
    throw new InvalidArgumentError(`invalid ${what} ${show(value)}: expected a string`)
  if (LONE_SURROGATE.test(value))
    throw new InvalidArgumentError(
      `invalid ${what} ${show(value)}: not well-formed text (a lone surrogate), which UTF-8 cannot carry`,
    )
  return value
}

/** A key prefix: empty, or ending in `/`, printable, with no `..` segment. */
export function checkPrefix(prefix: unknown, what: string): string {
  if (
    typeof prefix !== 'string' ||
    (prefix !== '' && !prefix.endsWith('/')) ||
    prefix.split('/').includes('..') ||
    [...prefix].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  ) {
    throw new InvalidArgumentError(
      `invalid ${what} ${show(prefix)}: expected "" or a key prefix ending in "/" with no ".." segment`,
    )
  }
  return prefix
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * A configuration key (relative to the config prefix): 1 to 1024 characters of well-formed text, `/`
 * separated segments that are neither empty, `.` nor `..`, no leading or trailing `/`, no control characters.
 * `allowPrefix` admits what a subtree watch takes: "" (everything) or a key ending in `/`.
 */
export function checkConfigKey(key: unknown, what = 'config key', allowPrefix = false): string {
  const bad = (why: string) => new InvalidArgumentError(`invalid ${what} ${show(key)}: ${why}`)
  if (typeof key !== 'string') throw bad('expected a string')
  if (allowPrefix && key === '') return key
  if (key === '') throw bad('it is empty')
  if (key.length > 1024) throw bad('longer than 1024 characters')
  if (key.startsWith('/')) throw bad('a leading "/" would leave the config prefix; keys are relative')
  if ([...key].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f))
    throw bad('it contains a control character')
  if (LONE_SURROGATE.test(key)) throw bad('it is not well-formed text (a lone surrogate)')
  const segments = (allowPrefix && key.endsWith('/') ? key.slice(0, -1) : key).split('/')
  for (const s of segments) {
    if (s === '.' || s === '..') throw bad(`a "${s}" segment could escape the config prefix`)
    if (s === '') throw bad('it has an empty segment ("//" or a trailing "/")')
  }
  return key
}

/**
 * A lock or election name: a non-empty string of printable characters, at most 1024 bytes. It is used as
 * the key prefix `{name}/` exactly as given (leading `/` or not), like `etcdctl lock {name}`.
 */
export function checkLockName(name: unknown, what = 'lock name'): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) > 1024 ||
    [...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  ) {
    throw new InvalidArgumentError(
      `invalid ${what} ${show(name)}: expected a non-empty string of printable characters (at most 1024 bytes)`,
    )
  }
  return name
}

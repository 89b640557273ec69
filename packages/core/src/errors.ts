import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  GRPCUnknownError,
} from 'etcd3'

/** Stable failure codes; each error class below carries one. */
export type EtcdKitErrorCode =
  | 'ETCDKIT_INVALID_ARGUMENT'
  | 'ETCDKIT_CLOSED'
  | 'ETCDKIT_ETCD_UNAVAILABLE'
  | 'ETCDKIT_NO_INSTANCES'
  | 'ETCDKIT_ALL_ENDPOINTS_OPEN'
  | 'ETCDKIT_RETRIES_EXHAUSTED'
  | 'ETCDKIT_REQUEST_FAILED'
  | 'ETCDKIT_DEADLINE_EXCEEDED'
  | 'ETCDKIT_INVALID_CONFIG_VALUE'
  | 'ETCDKIT_LOCK_TIMEOUT'
  | 'ETCDKIT_LOCK_LOST'
  | 'ETCDKIT_LOCK_RELEASED'
  | 'ETCDKIT_NOT_LOCK_OWNER'
  | 'ETCDKIT_NOT_LEADER'
  | 'ETCDKIT_ALREADY_CAMPAIGNING'
  | 'ETCDKIT_NO_KIT'
  | 'ETCDKIT_CONFIG_CONFLICT'
  | 'ETCDKIT_CONFIG_REVISION_UNAVAILABLE'
  | 'ETCDKIT_PERMISSION_DENIED'
  | 'ETCDKIT_AUTH_FAILED'
  | 'ETCDKIT_TOO_LARGE'
  | 'ETCDKIT_ETCD_ERROR'

/**
 * The brand of etcdkit's errors, registered (`Symbol.for`) so that every copy of the package shares it:
 * an ESM and a CommonJS build loaded in one process (an ESM app whose dependency `require()`s
 * @etcdkit/core) have distinct classes, and `instanceof` must still recognise the other copy's errors.
 */
const BRAND = Symbol.for('@etcdkit/core:error-classes')
const ownInstanceOf = Function.prototype[Symbol.hasInstance]

/** The base of every error etcdkit throws: a stable `code`, and the underlying `cause` when there is one. */
export class EtcdKitError extends Error {
  readonly code: EtcdKitErrorCode
  constructor(code: EtcdKitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }

  /** The names of the error's classes from its own up to `EtcdKitError` (read by another copy's `instanceof`). */
  get [BRAND](): readonly string[] {
    const names: string[] = []
    for (let c: unknown = this.constructor; typeof c === 'function'; c = Object.getPrototypeOf(c)) {
      names.push(c.name)
      if (c.name === 'EtcdKitError') break
    }
    return names
  }

  /**
   * `err instanceof InvalidArgumentError` holds for an error of this copy's class, and for one made by
   * another copy of @etcdkit/core whose class of the same name it descends from (the brand says which).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // `this` is the class on the right of `instanceof` (a subclass inherits this method)
    // biome-ignore lint/complexity/noThisInStatic: the subclass asked about, not EtcdKitError
    if (ownInstanceOf.call(this, value)) return true
    if (typeof value !== 'object' || value === null) return false
    const names = (value as { [BRAND]?: unknown })[BRAND]
    // biome-ignore lint/complexity/noThisInStatic: the subclass asked about, not EtcdKitError
    return Array.isArray(names) && names.includes(this.name)
  }
}

/** A bad argument or option; the message names the offending value. */
export class InvalidArgumentError extends EtcdKitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ETCDKIT_INVALID_ARGUMENT', capMessage(message), options)
  }
}

/**
 * etcd refused the call: the kit's user has no permission on the key or prefix named in the message.
 * Terminal for the call that met it (retrying cannot help until an operator grants the permission).
 */
export class PermissionDeniedError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_PERMISSION_DENIED', capMessage(message), { cause })
  }
}

/** etcd did not accept the kit's credentials (wrong user or password, user removed, no credentials given). */
export class AuthFailedError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_AUTH_FAILED', capMessage(message), { cause })
  }
}

/** A request or an answer exceeds a size limit (etcd's `--max-request-bytes`, grpc-js's receive limit). */
export class TooLargeError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_TOO_LARGE', capMessage(message), { cause })
  }
}

/** etcd answered a call with an error that has no code of its own here; `cause` is etcd3's error. */
export class EtcdCallError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_ETCD_ERROR', capMessage(message), { cause })
  }
}

/** The kit (or the object the call was made on) has been closed. */
export class ClosedError extends EtcdKitError {
  constructor(what: string, cause?: unknown) {
    super('ETCDKIT_CLOSED', `${what} is closed`, cause === undefined ? undefined : { cause })
  }
}

/** etcd could not be reached or did not answer in time. */
export class EtcdUnavailableError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_ETCD_UNAVAILABLE', message, { cause })
  }
}

/** A service has no known instance (none registered, or its first list has not been loaded yet). */
export class NoInstancesError extends EtcdKitError {
  readonly service: string
  constructor(service: string, why = 'no instances are registered') {
    super('ETCDKIT_NO_INSTANCES', `service ${JSON.stringify(service)}: ${why}`)
    this.service = service
  }
}

/** Every instance of a service is skipped because its circuit breaker is open. */
export class AllEndpointsOpenError extends EtcdKitError {
  readonly service: string
  constructor(service: string, endpoints: number) {
    super(
      'ETCDKIT_ALL_ENDPOINTS_OPEN',
      `service ${JSON.stringify(service)}: the circuit breakers of all ${endpoints} instance(s) are open`,
    )
    this.service = service
  }
}

/** A request failed on every endpoint it was allowed to try; `cause` is the last failure. */
export class RetriesExhaustedError extends EtcdKitError {
  readonly service: string
  /** The addresses tried, in order. */
  readonly tried: readonly string[]
  constructor(service: string, tried: readonly string[], cause: unknown) {
    super(
      'ETCDKIT_RETRIES_EXHAUSTED',
      `service ${JSON.stringify(service)}: request failed on ${tried.length} endpoint(s) (${tried.join(', ')}): ${
        (cause as Error)?.message ?? String(cause)
      }`,
      { cause },
    )
    this.service = service
    this.tried = tried
  }
}

/** A request to one endpoint failed in a way that is not retried; `cause` is undici's error. */
export class RequestFailedError extends EtcdKitError {
  readonly service: string
  readonly address: string
  constructor(service: string, address: string, cause: unknown) {
    super(
      'ETCDKIT_REQUEST_FAILED',
      `service ${JSON.stringify(service)}: request to ${address} failed: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    )
    this.service = service
    this.address = address
  }
}

/** A request's `deadline` passed before any of its attempts was answered (or while its body was read). */
export class DeadlineExceededError extends EtcdKitError {
  readonly service: string
  /** The deadline the request was given, in ms. */
  readonly deadline: number
  constructor(service: string, deadline: number, tried: readonly string[]) {
    super(
      'ETCDKIT_DEADLINE_EXCEEDED',
      `service ${JSON.stringify(service)}: no answer within the request's deadline of ${deadline} ms${
        tried.length > 0 ? ` (tried ${tried.join(', ')})` : ''
      }`,
    )
    this.service = service
    this.deadline = deadline
  }
}

/** A lock (or a campaign) was not obtained within its `timeout`. */
export class LockTimeoutError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_LOCK_TIMEOUT', message)
  }
}

/**
 * A held lock (or a won election) is no longer held, or can no longer be proven held: its session lease
 * was lost or ran out on the local clock, or its key was deleted. The reason of the held lock's `signal`.
 */
export class LockLostError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_LOCK_LOST', message, { cause })
  }
}

/** The reason of a held lock's `signal` after `release()`: the holder gave the lock up itself. */
export class LockReleasedError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_LOCK_RELEASED', message)
  }
}

/** A `LockReleasedError` without a stack trace: made on every release, where a stack says nothing and costs ~15 µs. */
export function cheapLockReleased(message: string): LockReleasedError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new LockReleasedError(message)
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** A guarded write was refused because the lock is not held (any more) with this fencing token. */
export class NotLockOwnerError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_NOT_LOCK_OWNER', message)
  }
}

/** `proclaim()` or `resign()` on an election this kit does not lead (any more). */
export class NotLeaderError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_NOT_LEADER', message)
  }
}

/** `campaign()` while this kit is already campaigning in (not yet leading) the same election. */
export class AlreadyCampaigningError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_ALREADY_CAMPAIGNING', message)
  }
}

/** The longest value `show()` renders, in characters: a 1 MB bad value must not make a 1 MB message. */
const SHOW_MAX = 200
/** The longest error message, in characters (a message may embed a cause's message). */
const MESSAGE_MAX = 2_000

function cap(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`
}

/** @internal Caps a message's length. */
export function capMessage(message: string): string {
  return cap(message, MESSAGE_MAX)
}

/** Keys whose values are never echoed (credentials, private keys). */
const SECRET_KEYS = /^(password|passphrase|secret|token|key|privateKey|auth|credentials|authorization)$/i

/**
 * Renders a value for an error message: strings quoted, plain objects and arrays as JSON, other objects by
 * their class name only (their fields may hold anything); credentials redacted; at most 200 characters.
 */
export function show(value: unknown): string {
  if (typeof value === 'string') return cap(JSON.stringify(value), SHOW_MAX)
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return `function ${cap(value.name, 60) || '(anonymous)'}`
  if (typeof value === 'symbol') return cap(String(value), SHOW_MAX)
  if (value === undefined) return 'undefined'
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const proto = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name
      return `[object ${typeof name === 'string' && name ? cap(name, 60) : 'Object'}]`
    }
  }
  try {
    const json = JSON.stringify(value, (k, v: unknown) =>
      k !== '' && SECRET_KEYS.test(k) && v !== undefined ? '[redacted]' : v,
    )
    return cap(json ?? String(value), SHOW_MAX)
  } catch {
    return '[unserialisable value]'
  }
}

/** A configuration value that its reader's `parse`, `schema` or `validate` refused; the last good value is kept. */
export class InvalidConfigValueError extends EtcdKitError {
  /** The etcd revision of the refused value (decimal string), when it came from etcd. */
  readonly revision: string | undefined
  /** What a Standard Schema reported (path and message per issue); empty when no schema refused it. */
  readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey> }>
  constructor(
    /** The key the value was read from, relative to the namespace (e.g. `config/orders/rate-limit`). */
    readonly key: string,
    /** The text that was refused. */
    readonly raw: string,
    reason: string,
    cause?: unknown,
    details?: {
      revision?: string | undefined
      issues?: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey> }>
    },
  ) {
    const at = details?.revision === undefined ? '' : ` (revision ${details.revision})`
    const text = raw.length > 200 ? `${raw.slice(0, 200)}…` : raw
    super(
      'ETCDKIT_INVALID_CONFIG_VALUE',
      `invalid config value ${show(text)} at ${show(key)}${at}: ${reason}`,
      {
        cause,
      },
    )
    this.revision = details?.revision
    this.issues = details?.issues ?? []
  }
}

/** Code that needs a kit (a decorated member) found none: nothing bound to its instance and no default kit. */
export class NoEtcdKitError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_NO_KIT', message)
  }
}

/** A guarded config write (`rollback`) was refused: the key changed since it was read. Nothing was written. */
export class ConfigConflictError extends EtcdKitError {
  constructor(
    /** The key, relative to the namespace. */
    readonly key: string,
    message: string,
  ) {
    super('ETCDKIT_CONFIG_CONFLICT', message)
  }
}

/** A config key's value at a revision cannot be read: compacted away, or no value of the key was written then. */
export class ConfigRevisionUnavailableError extends EtcdKitError {
  constructor(
    /** The key, relative to the namespace. */
    readonly key: string,
    /** The revision asked for (decimal string). */
    readonly revision: string,
    why: string,
    cause?: unknown,
  ) {
    super('ETCDKIT_CONFIG_REVISION_UNAVAILABLE', `config key ${show(key)} at revision ${revision}: ${why}`, {
      cause,
    })
  }
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err))

/**
 * The kind of an etcd3 / gRPC failure: `denied` and `auth` are terminal for the call that met them,
 * `large` cannot succeed by retrying either, `closed` is the client closed, everything else may pass.
 */
export function failureKind(err: unknown): 'denied' | 'auth' | 'large' | 'closed' | 'other' {
  if (err instanceof EtcdKitError) {
    if (err.code === 'ETCDKIT_PERMISSION_DENIED') return 'denied'
    if (err.code === 'ETCDKIT_AUTH_FAILED') return 'auth'
    if (err.code === 'ETCDKIT_TOO_LARGE') return 'large'
    if (err.code === 'ETCDKIT_CLOSED') return 'closed'
    return 'other'
  }
  const message = messageOf(err)
  if (err instanceof EtcdPermissionDeniedError || /etcdserver: permission denied/.test(message))
    return 'denied'
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdUserNotFoundError ||
    /etcdserver: (authentication failed|user name is empty|user name not found)/.test(message)
  )
    return 'auth'
  // etcd3 spells this class "Exhasted"
  if (
    err instanceof GRPCResourceExhastedError ||
    /request is too large|larger than max|message length too large|RESOURCE_EXHAUSTED/i.test(message)
  )
    return 'large'
  if (err instanceof ClientClosedError || /client was already closed|has been closed/i.test(message))
    return 'closed'
  return 'other'
}

/** etcd3's classes of a call that got no answer (as opposed to an answer refusing it). */
const UNANSWERED = [
  GRPCUnavailableError,
  GRPCDeadlineExceededError,
  GRPCCancelledError,
  GRPCInternalError,
  GRPCUnknownError,
]

/**
 * etcd refused the request because its auth store changed between the request's receipt and its apply (a
 * user or role changed anywhere, at that moment): nothing was applied, and the same request sent again
 * goes through. etcd's Go client sends it again; so does the kit.
 */
export function isAuthStoreMoved(err: unknown): boolean {
  return /revision of auth store is old/.test(messageOf(err))
}

/** Whether `err` is terminal for the call that met it: permission denied, authentication failed, too large. */
export function isTerminal(err: unknown): boolean {
  const kind = failureKind(err)
  return kind === 'denied' || kind === 'auth' || kind === 'large'
}

/**
 * An etcd3 / gRPC failure as a coded `EtcdKitError` (`cause` kept); `what` says what was being done and on
 * which key or prefix ("acquiring lock \"jobs\" (key prefix \"jobs/\")"). Kit errors pass unchanged.
 */
export function etcdError(err: unknown, what: string): EtcdKitError {
  if (err instanceof EtcdKitError) return err
  const detail = messageOf(err)
  switch (failureKind(err)) {
    case 'denied':
      return new PermissionDeniedError(`permission denied ${what}: ${detail}`, err)
    case 'auth':
      return new AuthFailedError(`etcd authentication failed ${what}: ${detail}`, err)
    case 'large':
      return new TooLargeError(`too large for one etcd call ${what}: ${detail}`, err)
    case 'closed':
      return new ClosedError('the kit', err)
    default: {
      if (UNANSWERED.some((c) => err instanceof c) || (err instanceof Error && err.constructor === Error))
        return new EtcdUnavailableError(capMessage(`etcd did not answer ${what}: ${detail}`), err)
      return new EtcdCallError(`etcd refused ${what}: ${detail}`, err)
    }
  }
}

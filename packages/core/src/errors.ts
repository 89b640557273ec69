/** Stable failure codes; each error class below carries one. */
export type EtcdKitErrorCode =
  | 'ETCDKIT_INVALID_ARGUMENT'
  | 'ETCDKIT_CLOSED'
  | 'ETCDKIT_ETCD_UNAVAILABLE'
  | 'ETCDKIT_SESSION_LOST'
  | 'ETCDKIT_INVALID_CONFIG_VALUE'

/** The base of every error etcdkit throws: a stable `code`, and the underlying `cause` when there is one. */
export class EtcdKitError extends Error {
  readonly code: EtcdKitErrorCode
  constructor(code: EtcdKitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A bad argument or option; the message names the offending value. */
export class InvalidArgumentError extends EtcdKitError {
  constructor(message: string) {
    super('ETCDKIT_INVALID_ARGUMENT', message)
  }
}

/** The kit (or the object the call was made on) has been closed. */
export class ClosedError extends EtcdKitError {
  constructor(what: string) {
    super('ETCDKIT_CLOSED', `${what} is closed`)
  }
}

/** etcd could not be reached or did not answer in time. */
export class EtcdUnavailableError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_ETCD_UNAVAILABLE', message, { cause })
  }
}

/** The session lease an operation depended on is gone. */
export class SessionLostError extends EtcdKitError {
  constructor(message: string, cause?: unknown) {
    super('ETCDKIT_SESSION_LOST', message, { cause })
  }
}

/** Renders a value for an error message: strings quoted, everything else as JSON where possible. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`
  if (value === undefined) return 'undefined'
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** A configuration value that its reader's `parse` or `validate` refused; the last good value is kept. */
export class InvalidConfigValueError extends EtcdKitError {
  constructor(
    /** The key the value was read from, relative to the namespace (e.g. `config/orders/rate-limit`). */
    readonly key: string,
    /** The text that was refused. */
    readonly raw: string,
    reason: string,
    cause?: unknown,
  ) {
    super('ETCDKIT_INVALID_CONFIG_VALUE', `invalid config value ${show(raw)} at ${show(key)}: ${reason}`, {
      cause,
    })
  }
}

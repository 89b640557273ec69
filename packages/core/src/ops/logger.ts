// The logger etcdkit writes to, and the adapter that accepts the logger shapes apps already have.
import { InvalidArgumentError, show } from '../errors.js'

/** The subset of a pino-compatible logger etcdkit uses (pino, Fastify's `app.log`, or `console`-like objects). */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/**
 * What `EtcdKitOptions.logger` accepts: pino or any pino-like logger (Fastify's `app.log`), a NestJS
 * `LoggerService` (`log` in place of `info`, message first, `debug`/`verbose` optional), or `console`.
 * Needs `warn`, `error`, and `info` or `log`.
 */
export interface LoggerLike {
  debug?(obj: object, msg?: string): void
  info?(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  /** NestJS's name for `info`. */
  log?(obj: object, msg?: string): void
  /** NestJS's name for `debug`. */
  verbose?(obj: object, msg?: string): void
}

/** Warnings and errors to stderr, as one JSON line each; debug and info are dropped. */
export const defaultLogger: Logger = {
  debug() {},
  info() {},
  warn(obj, msg) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', name: 'etcdkit', msg, ...errorFields(obj) })}\n`)
  },
  error(obj, msg) {
    process.stderr.write(`${JSON.stringify({ level: 'error', name: 'etcdkit', msg, ...errorFields(obj) })}\n`)
  },
}

function errorFields(obj: object): object {
  const err = (obj as { err?: unknown }).err
  return err instanceof Error
    ? { ...obj, err: { message: err.message, code: (err as { code?: unknown }).code } }
    : obj
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

const LEVELS = ['debug', 'info', 'warn', 'error'] as const
const isFunction = (v: unknown): v is (...args: unknown[]) => void => typeof v === 'function'

/** One line for a message-first logger: the message, then the fields as JSON (an error as its message and code). */
function line(obj: object, msg: string | undefined): string {
  const fields = errorFields(obj)
  const json = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ''
  return `${msg ?? ''}${json}`
}

/**
 * The `Logger` for any accepted shape: a pino-like object (all four levels) is used as is; a message-first
 * logger (Nest's, `console`) gets one line per entry, its `log` standing in for `info`, and `verbose` or nothing for
 * `debug`. Anything else is an `InvalidArgumentError` naming what is missing. `undefined` is the default.
 */
export function toLogger(value: unknown): Logger {
  if (value === undefined) return defaultLogger
  if (value === null || (typeof value !== 'object' && typeof value !== 'function'))
    throw new InvalidArgumentError(
      `invalid logger ${show(value)}: expected a pino-like, NestJS or console logger`,
    )
  const l = value as Record<string, unknown>
  // console's methods print their arguments in order: the object first would bury the message
  if (value !== console && LEVELS.every((level) => isFunction(l[level]))) return value as Logger
  // pino-likes have info; NestJS loggers have log instead, and take the message first
  if (isFunction(l.warn) && isFunction(l.error) && (isFunction(l.info) || isFunction(l.log))) {
    const call = (name: string) => {
      const fn = l[name]
      return isFunction(fn) ? (obj: object, msg?: string) => fn.call(value, line(obj, msg)) : () => {}
    }
    return {
      debug: call(isFunction(l.debug) ? 'debug' : 'verbose'),
      info: call(isFunction(l.info) ? 'info' : 'log'),
      warn: call('warn'),
      error: call('error'),
    }
  }
  const missing = [['warn'], ['error'], ['info', 'log']]
    .filter((names) => !names.some((name) => isFunction(l[name])))
    .map((names) => names.map((name) => `${name}()`).join(' or '))
  throw new InvalidArgumentError(`invalid logger: it has no ${missing.join(', ')} method`)
}

/**
 * Whether `logger` drops warnings and errors alike: Fastify's logger when logging is off (the default), or
 * pino at level `silent`. Integrations use the kit's default logger instead, so warnings reach someone.
 */
export function isNoopLogger(logger: unknown): boolean {
  if (logger === null || typeof logger !== 'object') return false
  const { debug, info, warn, error } = logger as Record<string, unknown>
  return isFunction(warn) && warn === error && warn === info && warn === debug
}

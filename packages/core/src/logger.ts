/** The subset of a pino-compatible logger etcdkit uses (pino, Fastify's `app.log`, or `console`-like objects). */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** Warnings and errors to stderr, as one JSON line each; debug and info are dropped. */
export const defaultLogger: Logger = {
  debug() {},
  info() {},
  warn(obj, msg) {
    process.stderr.write(`${JSON.stringify({ level: 'warn', name: 'etcdkit', msg, ...obj })}\n`)
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

// The kit's logs through Nest's logger (the kit's Logger wants pino's shape: info(obj, msg)).
import type { Logger } from '@etcdkit/core'
import { type LoggerService, Logger as NestLogger } from '@nestjs/common'

function describe(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code
    return code === undefined ? value.message : `${String(code)}: ${value.message}`
  }
  return value
}

/** `msg {"field":…}`: Nest's loggers take a message, not pino's (fields, message). */
function line(obj: object, msg: string | undefined): string {
  const fields = Object.entries(obj)
  if (fields.length === 0) return msg ?? ''
  let text: string
  try {
    text = JSON.stringify(Object.fromEntries(fields.map(([k, v]) => [k, describe(v)])), (_k, v: unknown) =>
      typeof v === 'bigint' ? v.toString() : v,
    )
  } catch {
    text = fields.map(([k]) => k).join(', ')
  }
  return msg === undefined ? text : `${msg} ${text}`
}

/**
 * Adapts a Nest `LoggerService` (`log`, `warn`, `error`, optional `debug`) to the logger an `EtcdKit`
 * takes. @default a Nest `Logger` with the context "EtcdKit" (so the app's `useLogger` choice applies)
 */
export function nestLogger(logger: LoggerService = new NestLogger('EtcdKit')): Logger {
  return {
    debug: (obj, msg) => logger.debug?.(line(obj, msg)),
    info: (obj, msg) => logger.log(line(obj, msg)),
    warn: (obj, msg) => logger.warn(line(obj, msg)),
    error: (obj, msg) => {
      const err = (obj as { err?: unknown }).err
      if (err instanceof Error && err.stack) logger.error(line(obj, msg), err.stack)
      else logger.error(line(obj, msg))
    },
  }
}

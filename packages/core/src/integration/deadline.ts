// The server side of a request's deadline: what is left of the caller's budget, from the header the
// service client sends (`etcdkit-timeout-ms`), as a signal a handler can pass on or check.
import type { IncomingHttpHeaders } from 'node:http'
import { DEADLINE_HEADER } from '../registry/service-client.js'

/**
 * An `AbortSignal` that aborts when the caller of this request gives up, read from its
 * `etcdkit-timeout-ms` header (the ms it had left when it sent the request); already aborted when it had
 * none left; `undefined` without the header or with a value that is not a whole number of ms (a header
 * from elsewhere is not trusted to shed work). Network time is not subtracted: the signal errs late.
 */
export function callerDeadline(headers: IncomingHttpHeaders): AbortSignal | undefined {
  const raw = headers[DEADLINE_HEADER]
  if (typeof raw !== 'string' || !/^\d{1,10}$/.test(raw)) return undefined
  const ms = Number(raw)
  if (ms === 0) return AbortSignal.abort(new DOMException('the caller has no time left', 'TimeoutError'))
  return AbortSignal.timeout(ms)
}

export { DEADLINE_HEADER }

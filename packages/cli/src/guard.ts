// The console's request guard: every request, whatever its route, passes through one Fastify `onRequest`
// hook installed before any route exists. It refuses what a hostile web page could send from an
// operator's browser: another name for this port (DNS rebinding), a foreign origin, a missing token, a
// write without the page's anti-CSRF token.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { UsageError } from './errors.js'

/** The request header that carries the page's anti-CSRF token on every write. */
export const CSRF_HEADER = 'x-etcdkit-csrf'

export interface GuardOptions {
  /** The address the console binds, as given (`--host`). */
  host: string
  /** Required on every request when set (`?token=` or `Authorization: Bearer`). */
  token: string | undefined
}

/** What the guard decided at start-up; `csrf` is embedded in the page, which sends it with each write. */
export interface Guard {
  /** This console run's anti-CSRF token (random, 32 bytes, base64url). */
  readonly csrf: string
  /** Installs the hook; call before adding any route. `port` is read from the server once it listens. */
  install(app: FastifyInstance): void
}

/**
 * A bind address that only this machine can reach: an IP literal in 127.0.0.0/8, `::1` (also as an
 * IPv4-mapped `::ffff:127.x`), or the name `localhost` (RFC 6761). Decided on the parsed address: a name
 * such as `127.attacker.example` is not an address, so it is not loopback.
 */
export function isLoopbackAddress(host: string): boolean {
  const h = unbracket(host).toLowerCase()
  if (h === 'localhost') return true
  const version = isIP(h)
  if (version === 4) return h.split('.')[0] === '127'
  if (version === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)?.[1]
    return mapped !== undefined && mapped.split('.')[0] === '127'
  }
  return false
}

const WILDCARD = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0'])

/** Refuses a bind beyond loopback without `--host` and a token. */
export function checkBind(host: string, hostGiven: boolean, token: string | undefined): void {
  if (isLoopbackAddress(host)) return
  if (!hostGiven) throw new UsageError(`refusing to bind ${host}: only loopback without --host`)
  if (!token)
    throw new UsageError(`--host ${host} is not loopback: give a --token (or ETCDKIT_CONSOLE_TOKEN)`)
}

const unbracket = (h: string) => (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h)

/**
 * Splits a `Host` header (or an origin's host part) into a lower-cased name and a port, or `undefined`
 * when it is not `name[:port]` / `[v6][:port]`. No URL parser: it would accept and rewrite forms a
 * browser never sends (userinfo, percent-escapes), and the comparison must be on exactly what came.
 */
export function parseHost(value: string): { name: string; port: number | undefined } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/@[\]]+)(?::(\d{1,5}))?$/.exec(value)
  if (!m) return undefined
  const port = m[2] === undefined ? undefined : Number(m[2])
  if (port !== undefined && port > 65535) return undefined
  return { name: unbracket(m[1]!).toLowerCase(), port }
}

/** The names this console answers to: loopback's, the bound one, and for a wildcard bind this machine's. */
function ownNames(host: string): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '::1', unbracket(host).toLowerCase()])
  if (WILDCARD.has(unbracket(host))) {
    names.add(hostname().toLowerCase())
    for (const list of Object.values(networkInterfaces()))
      for (const i of list ?? []) names.add(i.address.toLowerCase())
  }
  return names
}

function same(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

const SAFE_METHODS = new Set(['GET', 'HEAD'])

export function createGuard(options: GuardOptions): Guard {
  const { token } = options
  const names = ownNames(options.host)
  const csrf = randomBytes(32).toString('base64url')
  let port: number | undefined

  const refuse = (reply: FastifyReply, status: number, error: string) =>
    reply.code(status).header('cache-control', 'no-store').send({ error })

  const check = async (req: FastifyRequest, reply: FastifyReply) => {
    if (port === undefined) {
      const address = req.server.server.address()
      port = typeof address === 'object' && address ? address.port : undefined
    }
    // DNS rebinding: a page on another name that resolves here must not reach the console
    const rawHost = req.headers.host ?? ''
    const host = parseHost(rawHost)
    if (!host || !names.has(host.name) || (host.port ?? 80) !== port)
      return refuse(reply, 421, `unexpected Host ${JSON.stringify(rawHost)}: not this console's address`)
    // a foreign page: its requests carry its own Origin (fetch, EventSource, forms) or Sec-Fetch-Site
    const site = req.headers['sec-fetch-site']
    if (site !== undefined && site !== 'same-origin' && site !== 'none')
      return refuse(reply, 403, `cross-origin request refused (Sec-Fetch-Site: ${JSON.stringify(site)})`)
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `http://${rawHost.toLowerCase()}`)
      return refuse(reply, 403, `foreign Origin ${JSON.stringify(origin)} refused`)
    if (token) {
      const q = (req.query as { token?: unknown } | undefined)?.token
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
      if (!same(q ?? bearer, token)) return refuse(reply, 401, 'a valid token is required')
    }
    if (!SAFE_METHODS.has(req.method)) {
      if (!same(req.headers[CSRF_HEADER], csrf))
        return refuse(
          reply,
          403,
          `a write needs the page's anti-CSRF token (${CSRF_HEADER}): reload the page`,
        )
      // a cross-site form cannot send JSON without a CORS preflight, which this server never grants
      if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
        return refuse(reply, 415, 'expected application/json')
    }
  }

  return {
    csrf,
    install(app) {
      app.addHook('onRequest', check)
      // no framing by another page (clickjacking the write buttons), no sniffing, no token in a Referer
      app.addHook('onSend', async (_req, reply, payload) => {
        reply.header('x-frame-options', 'DENY')
        reply.header('content-security-policy', "frame-ancestors 'none'")
        reply.header('x-content-type-options', 'nosniff')
        reply.header('referrer-policy', 'no-referrer')
        return payload
      })
    },
  }
}

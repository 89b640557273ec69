// The kit's TLS and auth options as etcd3 takes them: checked at construction (a path or PEM text, arrays,
// pairs that must go together), with secrets kept out of enumeration, JSON and inspection.
import { readFileSync } from 'node:fs'
import type { IOptions } from 'etcd3'
import { InvalidArgumentError, show } from '../errors.js'
import type { Logger } from '../ops/logger.js'
import { checkKeys, isPlainObject } from '../validate.js'

/** PEM text, a Buffer of it, or the path of a PEM file; several (a CA bundle) as an array. */
export type PemInput = string | Buffer | ReadonlyArray<string | Buffer>

/** TLS to etcd. */
export interface TlsOptions {
  /** The CA (or CAs) that signed etcd's certificate: PEM text, a Buffer, a file path, or an array of them. */
  ca: PemInput
  /** A client certificate (mutual TLS), with `key`. */
  cert?: PemInput
  /** The client certificate's private key, with `cert`. */
  key?: PemInput
}

/** etcd user authentication. */
export interface AuthOptions {
  username: string
  password: string
}

function pem(value: unknown, what: string): Buffer {
  const one = (v: unknown): Buffer => {
    if (Buffer.isBuffer(v)) return v
    if (typeof v !== 'string' || v === '')
      throw new InvalidArgumentError(
        `invalid tls.${what} ${show(v)}: expected PEM text, a Buffer or a file path`,
      )
    if (v.includes('-----BEGIN')) return Buffer.from(v)
    try {
      return readFileSync(v)
    } catch (err) {
      // a key's path may be shown; its contents never are
      throw new InvalidArgumentError(
        `invalid tls.${what}: ${show(v)} is neither PEM text nor a readable file (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        { cause: err },
      )
    }
  }
  const buf = Array.isArray(value) ? Buffer.concat(value.map((v) => one(v))) : one(value)
  if (!buf.includes('-----BEGIN'))
    throw new InvalidArgumentError(`invalid tls.${what}: no PEM block ("-----BEGIN ...") in it`)
  return buf
}

/** Defines `key` on `target` as a non-enumerable property: out of JSON, `Object.keys` and `util.inspect`. */
function hidden<T extends object>(target: T, key: string, value: unknown): T {
  Object.defineProperty(target, key, { value, enumerable: false, writable: false, configurable: false })
  return target
}

/**
 * The `auth`, `credentials` and host part of etcd3's options. Throws `InvalidArgumentError` for what
 * cannot work; warns once when a password would cross the network in clear text.
 */
export function etcdSecurity(
  endpoints: readonly string[],
  auth: unknown,
  tls: unknown,
  log: Logger,
): Pick<IOptions, 'auth' | 'credentials'> {
  const out: Pick<IOptions, 'auth' | 'credentials'> = {}
  if (auth !== undefined) {
    if (!isPlainObject(auth) || typeof auth.username !== 'string' || typeof auth.password !== 'string')
      throw new InvalidArgumentError('invalid auth: expected { username: string, password: string }')
    checkKeys(auth, ['username', 'password'], 'auth')
    if (auth.username === '') throw new InvalidArgumentError('invalid auth: the username is empty')
    out.auth = hidden({ username: auth.username }, 'password', auth.password) as IOptions['auth']
  }
  const schemes = new Set(
    endpoints.map((e) => (/^https:\/\//i.test(e) ? 'https' : /^http:\/\//i.test(e) ? 'http' : '')),
  )
  if (schemes.has('http') && schemes.has('https'))
    throw new InvalidArgumentError(
      `invalid endpoints ${show(endpoints)}: some are http:// and some https://; use one scheme for all`,
    )
  if (tls !== undefined) {
    if (!isPlainObject(tls))
      throw new InvalidArgumentError(
        'invalid tls: expected { ca, cert?, key? } (PEM text, Buffers or file paths)',
      )
    checkKeys(tls, ['ca', 'cert', 'key'], 'tls')
    if (tls.ca === undefined) throw new InvalidArgumentError('invalid tls: `ca` is missing')
    if ((tls.cert === undefined) !== (tls.key === undefined))
      throw new InvalidArgumentError('invalid tls: `cert` and `key` go together (mutual TLS needs both)')
    if (schemes.has('http'))
      throw new InvalidArgumentError(
        `invalid endpoints ${show(endpoints)}: http:// endpoints with tls; use https:// or no scheme`,
      )
    const credentials = { rootCertificate: pem(tls.ca, 'ca') } as NonNullable<IOptions['credentials']>
    if (tls.cert !== undefined) {
      credentials.certChain = pem(tls.cert, 'cert')
      hidden(credentials, 'privateKey', pem(tls.key, 'key'))
    }
    out.credentials = credentials
  }
  const plaintext = tls === undefined && !schemes.has('https')
  const remote = endpoints.filter((e) => !isLoopback(e))
  if (auth !== undefined && plaintext && remote.length > 0)
    log.warn(
      { endpoints: remote },
      'etcd auth over plaintext: the password and tokens cross the network unencrypted; configure `tls`',
    )
  return out
}

function isLoopback(endpoint: string): boolean {
  const host = endpoint
    .replace(/^https?:\/\//i, '')
    .replace(/\/$/, '')
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
  return host === 'localhost' || host === '::1' || /^127\./.test(host)
}

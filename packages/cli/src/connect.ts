// The kit's connection from flags and environment: the same options as `new EtcdKit()`, no password on
// the command line (ETCDKIT_PASSWORD, or a prompt on a terminal).
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { userInfo } from 'node:os'
import { type EtcdKit, EtcdKitError, type EtcdKitOptions, EtcdUnavailableError } from '@etcdkit/core'
import { UsageError } from './errors.js'

/** The connection flags every command takes. */
export interface ConnectionFlags {
  endpoints?: string
  namespace?: string
  cacert?: string
  cert?: string
  key?: string
  user?: string
  timeout?: string
}

export const CONNECTION_OPTIONS = {
  endpoints: { type: 'string' },
  namespace: { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  user: { type: 'string' },
  timeout: { type: 'string' },
} as const

export const CONNECTION_HELP = `Connection (flags, else environment):
  --endpoints a:2379,b:2379   ETCD_ENDPOINTS        default 127.0.0.1:2379
  --namespace prefix/         ETCDKIT_NAMESPACE     the kit namespace of the services you inspect
  --cacert ca.pem             ETCDKIT_CACERT        TLS: the CA of etcd's certificate (a file)
  --cert client.pem           ETCDKIT_CERT          mutual TLS: client certificate (a file; with --key, --cacert)
  --key client-key.pem        ETCDKIT_KEY           mutual TLS: client key (a file; with --cert, --cacert)
  --user name                 ETCDKIT_USER          auth; the password from ETCDKIT_PASSWORD, or a prompt
  --timeout ms                                      deadline of each etcd call, default 5000`

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new UsageError(
      `--${flag} ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    )
  }
}

/** Builds the kit options; `password` asks for the password when auth is used without ETCDKIT_PASSWORD. */
/** The OS user; `unknown` where the OS has none (a container's bare uid). */
function osUser(): string {
  try {
    return userInfo().username
  } catch {
    return 'unknown'
  }
}

/**
 * Who acts through the CLI or the console, for the record beside what it writes (`config history`,
 * `flags history`, the console's audit): the etcd auth user (`--user`, `ETCDKIT_USER`), else the OS user.
 */
export function operator(flags: { user?: string } = {}, env: NodeJS.ProcessEnv = {}): string {
  return flags.user ?? env.ETCDKIT_USER ?? osUser()
}

/** The writer the CLI records beside each value or flag definition it writes. */
export function cliWriter(flags: { user?: string } = {}, env: NodeJS.ProcessEnv = {}): string {
  return `etcdkit-cli:${operator(flags, env)}`
}

export async function kitOptions(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv,
  password: (user: string) => Promise<string>,
): Promise<EtcdKitOptions> {
  const options: EtcdKitOptions = { logger: quietLogger }
  const endpoints = flags.endpoints ?? env.ETCD_ENDPOINTS
  if (endpoints !== undefined) options.endpoints = endpoints
  const namespace = flags.namespace ?? env.ETCDKIT_NAMESPACE
  if (namespace !== undefined) options.namespace = namespace
  if (flags.timeout !== undefined) {
    const ms = Number(flags.timeout)
    if (!Number.isInteger(ms) || ms <= 0)
      throw new UsageError(`--timeout ${JSON.stringify(flags.timeout)}: expected milliseconds`)
    options.callTimeout = ms
  }
  const cacert = flags.cacert ?? env.ETCDKIT_CACERT
  const cert = flags.cert ?? env.ETCDKIT_CERT
  const key = flags.key ?? env.ETCDKIT_KEY
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--cert and --key go together (mutual TLS)')
  if (cert !== undefined && cacert === undefined) throw new UsageError('--cert and --key need --cacert')
  if (cacert !== undefined)
    options.tls = {
      ca: readPem(cacert, 'cacert'),
      ...(cert !== undefined && key !== undefined
        ? { cert: readPem(cert, 'cert'), key: readPem(key, 'key') }
        : {}),
    }
  const user = flags.user ?? env.ETCDKIT_USER
  if (user !== undefined)
    options.auth = { username: user, password: env.ETCDKIT_PASSWORD ?? (await password(user)) }
  return options
}

/** The kit's own warnings would interleave with tables: the CLI reports failures itself. */
const quietLogger = { debug() {}, info() {}, warn() {}, error() {} }

/** `unreachable()`'s error: said once, never wrapped again. */
class UnreachableError extends EtcdUnavailableError {}

/**
 * The one way every command meets an etcd it cannot reach, whether the port refuses or the server is
 * silent: `etcd at {endpoints} is unreachable: {why}`, naming what was being done.
 */
export function unreachable(kit: EtcdKit, why: string, what?: string, cause?: unknown): EtcdUnavailableError {
  return new UnreachableError(
    `etcd at ${kit.endpoints.join(', ')} is unreachable${what ? ` (${what})` : ''}: ${why}`,
    cause,
  )
}

/**
 * Why a call did not reach etcd, when that is what its error says (refused, no answer, no such host);
 * `undefined` for an answer etcd gave (permission denied, bad request, conflict...).
 */
export function transportFailure(err: unknown, ms: number): string | undefined {
  if (err instanceof UnreachableError) return undefined
  if (err instanceof EtcdKitError && err.code !== 'ETCDKIT_ETCD_UNAVAILABLE') return undefined
  const text = `${(err as Error)?.message ?? ''} ${String((err as { cause?: Error })?.cause?.message ?? '')}`
  if (/ECONNREFUSED/.test(text)) return 'connection refused'
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) return 'no such host'
  if (/deadline|timed? ?out/i.test(text)) return `no answer within ${ms} ms`
  if (/ECONNRESET|EPIPE|No connection established|UNAVAILABLE|Unavailable/i.test(text))
    return 'the connection failed'
  return err instanceof EtcdUnavailableError ? `no answer within ${ms} ms` : undefined
}

/** `reach()` of each kit, in flight or done: a command's failed call defers to its verdict. */
const reaching = new WeakMap<EtcdKit, Promise<void>>()

/**
 * Settles with `p`, or rejects with `unreachable()` once `ms` pass: a command never waits on etcd for
 * longer, though the kit's own views retry for ever. A transport failure of `p` gets the same message.
 */
export async function within<T>(kit: EtcdKit, ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unreachable(kit, `no answer within ${ms} ms`, what)), ms)
  })
  try {
    return await Promise.race([p, late])
  } catch (err) {
    const why = transportFailure(err, ms)
    if (why === undefined) throw err
    // etcd not reached at all: the one message `reach()` gives, not one per call that noticed
    await reaching.get(kit)
    throw unreachable(kit, why, what, err)
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Asks etcd for its status, at the start of every command: any answer, an error etcd sends included (auth,
 * say), means it is reachable; a refused port fails at once, a silent server after `ms`. The command starts
 * meanwhile (its arguments are checked without etcd); its calls that fail to reach etcd wait for this.
 */
export function reach(kit: EtcdKit, ms: number): Promise<void> {
  const asking = (async () => {
    const end = Date.now() + ms
    for (;;) {
      try {
        return await kit.client.maintenance.status()
      } catch (err) {
        // a call that ran out of its deadline, or met a connection failing for no reason it could name (a
        // channel between attempts), is asked again while the command's own deadline lasts
        const why = transportFailure(err, ms)
        if (why === undefined || why === 'connection refused' || why === 'no such host' || Date.now() >= end)
          throw err
        // grpc-js shares connections process-wide and may not say why one failed: ask the ports themselves
        if (await allRefuse(kit.endpoints)) throw unreachable(kit, 'connection refused', undefined, err)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  })()
  const reached = (async () => {
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        asking,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(unreachable(kit, `no answer within ${ms} ms`)), ms)
        }),
      ])
    } catch (err) {
      if (err instanceof UnreachableError) throw err
      const why = transportFailure(err, ms)
      if (why !== undefined) throw unreachable(kit, why, undefined, err)
      // etcd answered, with an error of its own: reachable; the command meets that error itself
    } finally {
      clearTimeout(timer)
    }
  })()
  reached.catch(() => {}) // awaited by the command line; a call may defer to it too
  reaching.set(kit, reached)
  return reached
}

/** Whether every endpoint refuses a TCP connection (nothing listens there): a definite answer, at once. */
async function allRefuse(endpoints: readonly string[]): Promise<boolean> {
  const refuses = (endpoint: string) =>
    new Promise<boolean>((resolve) => {
      const m = /^(?:\w+:\/\/)?(\[[^\]]+\]|[^:/]+):(\d+)/.exec(endpoint)
      if (!m) return resolve(false)
      const socket = connect({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) })
      const done = (refused: boolean) => {
        socket.destroy()
        resolve(refused)
      }
      socket.setTimeout(1_000, () => done(false))
      socket.once('connect', () => done(false))
      socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED'))
    })
  return (await Promise.all(endpoints.map(refuses))).every(Boolean)
}

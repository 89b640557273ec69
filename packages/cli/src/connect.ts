// The kit's connection from flags and environment: the same options as `new EtcdKit()`, no password on
// the command line (ETCDKIT_PASSWORD, or a prompt on a terminal).
import { readFileSync } from 'node:fs'
import type { EtcdKitOptions } from '@etcdkit/core'
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
  --cert client.pem           ETCDKIT_CERT          mutual TLS: client certificate (a file)
  --key client-key.pem        ETCDKIT_KEY           mutual TLS: client key (a file)
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

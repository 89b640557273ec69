import {
  type DialectWriteSpec,
  type EtcdKit,
  type InstanceMetadata,
  InvalidArgumentError,
  type Registration,
} from '@etcdkit/core'
import {
  advertisedAddress,
  checkAddress,
  checkKeys,
  checkMs,
  isPlainObject,
  show,
} from '@etcdkit/core/integration'
import type { Server } from '@grpc/grpc-js'

export interface GrpcServerRegistrationOptions {
  /** The server, already bound (`bindAsync` has called back). */
  server: Server
  /** The service name clients dial: `etcdv3:///{service}` or `etcd:///{registryPrefix}{service}`. */
  service: string
  /**
   * The bound port (as `bindAsync` reports it), advertised on this host's first non-internal IPv4 address.
   * Give either `port` or `address`.
   */
  port?: number
  /** The exact `host:port` to advertise (IPv6 as `[::1]:50051`), instead of `port`. */
  address?: string
  /**
   * Registry metadata. None by default: Go gRPC clients on etcd's resolver (`etcd:///services/{service}`)
   * panic on any metadata object (etcd issue 19700), so give metadata only when no Go gRPC client dials
   * this service. Its `protocol`, if given, must be `"grpc"`.
   */
  metadata?: InstanceMetadata
  /**
   * The registry dialects to register in, in one txn: `['etcd', 'go-zero', 'kratos']` makes the server
   * callable by etcd's Go gRPC resolver, go-zero's zrpc and Kratos' gRPC clients at once (Kratos and
   * go-micro are told it speaks gRPC). See docs/POLYGLOT.md. @default ['etcd']
   */
  dialects?: readonly DialectWriteSpec[]
  /**
   * How long to wait between the deregistration and the server's shutdown, in ms: time for clients whose
   * watch is slow (a distant etcd) to stop picking this server. @default 0
   */
  drainDelay?: number
  /** Gives up waiting for etcd when it aborts. */
  signal?: AbortSignal
  /** How long to wait for etcd to write the registration, in ms. @default 10_000 */
  timeout?: number
}

/** A gRPC server's registration. */
export interface GrpcServerRegistration extends AsyncDisposable {
  readonly service: string
  readonly address: string
  /** The registry key (`{registryPrefix}{service}/{address}`). */
  readonly key: string
  /** Deletes the key, leaving the server running. Idempotent. */
  deregister(): Promise<void>
  /** Deregisters, waits `drainDelay`, then `tryShutdown()`s the server (in-flight calls finish). Idempotent. */
  close(): Promise<void>
}

/** Every key `GrpcServerRegistrationOptions` has: any other is a typo, refused rather than ignored. */
const OPTIONS = [
  'server',
  'service',
  'port',
  'address',
  'metadata',
  'dialects',
  'drainDelay',
  'signal',
  'timeout',
] as const

/**
 * Registers a bound gRPC server as an instance of `service` on the kit's session lease, and takes it out of
 * the registry before the server stops: `server.tryShutdown()` and `server.forceShutdown()` are wrapped to
 * deregister first, so clients stop picking this server before it refuses calls.
 */
export async function registerGrpcServer(
  kit: EtcdKit,
  options: GrpcServerRegistrationOptions,
): Promise<GrpcServerRegistration> {
  if (typeof kit?.register !== 'function')
    throw new InvalidArgumentError(`invalid kit ${show(kit)}: expected an EtcdKit`)
  if (!isPlainObject(options as unknown))
    throw new InvalidArgumentError(`invalid registerGrpcServer options ${show(options)}`)
  checkKeys(options, OPTIONS, 'registerGrpcServer')
  const { server, service, port, metadata, drainDelay = 0 } = options
  if (
    typeof server !== 'object' ||
    server === null ||
    typeof server.tryShutdown !== 'function' ||
    typeof server.forceShutdown !== 'function'
  )
    throw new InvalidArgumentError('invalid server: expected a @grpc/grpc-js Server')
  if ((port === undefined) === (options.address === undefined))
    throw new InvalidArgumentError(
      `give either port or address to advertise (port: ${show(port)}, address: ${show(options.address)})`,
    )
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65_535))
    throw new InvalidArgumentError(`invalid port ${show(port)}: expected the bound port, 1..65535`)
  // at most a Node timer's longest delay: a longer one would fire at once
  checkMs(drainDelay, 'registerGrpcServer drainDelay')
  if (metadata?.protocol !== undefined && metadata.protocol !== 'grpc')
    throw new InvalidArgumentError(
      `invalid metadata.protocol ${show(metadata.protocol)}: a gRPC server's protocol is "grpc"`,
    )
  // a port alone: the server is reachable on every interface, so advertise the host's address
  const address =
    options.address !== undefined
      ? checkAddress(options.address)
      : advertisedAddress(
          { address: '0.0.0.0', family: 'IPv4', port: port! },
          undefined,
          kit.logger,
          '@etcdkit/grpc',
        )

  const registration: Registration = await kit.register({
    service,
    address,
    ...(metadata ? { metadata } : {}),
    ...(options.dialects ? { dialects: options.dialects } : {}),
    // said outside the metadata: etcd's Go gRPC resolver cannot take metadata, Kratos needs the scheme
    protocol: 'grpc',
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
  })

  let deregistering: Promise<void> | undefined
  const deregister = () => {
    deregistering ??= registration.deregister().catch((err: unknown) => {
      kit.logger.warn(
        { err, key: registration.key },
        'could not deregister the gRPC server; the key expires with the lease',
      )
    })
    return deregistering
  }
  const drained = async () => {
    await deregister()
    if (drainDelay > 0) await new Promise((resolve) => setTimeout(resolve, drainDelay))
  }

  const tryShutdown = server.tryShutdown
  const forceShutdown = server.forceShutdown
  server.tryShutdown = (callback: (error?: Error) => void) => {
    void drained().then(() => tryShutdown.call(server, callback))
  }
  // synchronous by contract: the delete goes out, and the server stops now
  server.forceShutdown = () => {
    void deregister()
    forceShutdown.call(server)
  }

  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= new Promise<void>((resolve, reject) =>
      server.tryShutdown((err) => (err ? reject(err) : resolve())),
    )
    return closing
  }
  return {
    service: registration.service,
    address: registration.address,
    key: registration.key,
    deregister,
    close,
    [Symbol.asyncDispose]: close,
  }
}

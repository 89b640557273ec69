import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { EtcdKit, type EtcdKitOptions, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { type EtcdResolverOptions, registerEtcdResolver } from '../src/index.js'

/** The run's etcd (ETCD_ENDPOINTS) or one started for this test file. */
export const etcd = sharedEtcd

export { eventually } from '@etcdkit/testing'

/** A kit on the shared etcd, in the given namespace (or one of its own). */
export async function kit(options: EtcdKitOptions = {}): Promise<EtcdKit> {
  const { endpoints } = await etcd()
  return new EtcdKit({ endpoints, namespace: uniquePrefix('grpc'), logger: silentLogger, ...options })
}

export interface EchoRequest {
  message: string
}

export interface HelloClient extends grpc.Client {
  Echo(
    req: EchoRequest,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, res?: EchoRequest) => void,
  ): grpc.ClientUnaryCall
  Stream(req: EchoRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<EchoRequest>
}

type HelloConstructor = new (
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => HelloClient

const definition = protoLoader.loadSync(
  fileURLToPath(new URL('../../../examples/grpc-hello/hello.proto', import.meta.url)),
)
const pb = grpc.loadPackageDefinition(definition).pb as unknown as {
  Hello: HelloConstructor & { service: grpc.ServiceDefinition }
}

export function helloClient(target: string, options: grpc.ChannelOptions = {}): HelloClient {
  return new pb.Hello(target, grpc.credentials.createInsecure(), options)
}

/** One Echo call; resolves with the reply (`{server name}:{message}`) or rejects with the gRPC error. */
export function echo(client: HelloClient, message: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.Echo({ message }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res!.message),
    )
  })
}

export interface HelloServer {
  readonly name: string
  readonly server: grpc.Server
  readonly port: number
  readonly address: string
  /** Calls served. */
  readonly calls: number
  /** Echo answers after this many ms (0: at once). */
  delay: number
}

/** A Hello server on 127.0.0.1: Echo answers `{name}:{message}`; Stream sends `{name}:{message}:{i}` for i in 0..2. */
export async function startHello(name: string): Promise<HelloServer> {
  const server = new grpc.Server()
  const state = { calls: 0, delay: 0 }
  server.addService(pb.Hello.service, {
    Echo(call: grpc.ServerUnaryCall<EchoRequest, EchoRequest>, callback: grpc.sendUnaryData<EchoRequest>) {
      state.calls++
      const answer = () => callback(null, { message: `${name}:${call.request.message}` })
      if (state.delay > 0) setTimeout(answer, state.delay)
      else answer()
    },
    Stream(call: grpc.ServerWritableStream<EchoRequest, EchoRequest>) {
      state.calls++
      for (let i = 0; i < 3; i++) call.write({ message: `${name}:${call.request.message}:${i}` })
      call.end()
    },
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  )
  return {
    name,
    server,
    port,
    address: `127.0.0.1:${port}`,
    get calls() {
      return state.calls
    },
    get delay() {
      return state.delay
    },
    set delay(ms: number) {
      state.delay = ms
    },
  }
}

/** Registers the resolver for `kit` under schemes unique to this test (grpc-js resolvers are global). */
export function resolverFor(k: EtcdKit, options: Pick<EtcdResolverOptions, 'balancer'> = {}) {
  const tag = randomBytes(3).toString('hex')
  const reg = registerEtcdResolver(k, {
    serviceScheme: `etcdv3-${tag}`,
    prefixScheme: `etcd-${tag}`,
    ...options,
  })
  return { ...reg, service: `etcdv3-${tag}`, prefix: `etcd-${tag}` }
}

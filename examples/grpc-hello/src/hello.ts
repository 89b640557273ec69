import { fileURLToPath } from 'node:url'
import type { EtcdKit } from '@etcdkit/core'
import { type GrpcServerRegistration, registerGrpcServer } from '@etcdkit/grpc'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

/** `message EchoRequest { string message = 1; }` */
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

type HelloClientConstructor = (new (
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => HelloClient) & { service: grpc.ServiceDefinition }

// loaded at run time: no generated code
const definition = protoLoader.loadSync(fileURLToPath(new URL('../hello.proto', import.meta.url)))
export const Hello = (
  grpc.loadPackageDefinition(definition).pb as unknown as { Hello: HelloClientConstructor }
).Hello

/** One Echo call with a deadline. */
export function echo(client: HelloClient, message: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Echo({ message }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res!.message),
    ),
  )
}

/**
 * Starts a Hello server on `host:port` (port 0: any free port) and registers it in etcd as `hello`.
 * Echo answers `[name] message`; Stream sends three numbered replies.
 */
export async function startHelloServer(
  kit: EtcdKit,
  options: { name: string; host?: string; port?: number; advertise?: string },
): Promise<{ server: grpc.Server; registration: GrpcServerRegistration }> {
  const { name, host = '0.0.0.0', port = 0 } = options
  const server = new grpc.Server()
  server.addService(Hello.service, {
    Echo(call: grpc.ServerUnaryCall<EchoRequest, EchoRequest>, callback: grpc.sendUnaryData<EchoRequest>) {
      callback(null, { message: `[${name}] ${call.request.message}` })
    },
    Stream(call: grpc.ServerWritableStream<EchoRequest, EchoRequest>) {
      for (let i = 1; i <= 3; i++) call.write({ message: `[${name}] ${call.request.message} #${i}` })
      call.end()
    },
  })
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  )
  // bound to every interface: advertise the host's address (or what the caller says)
  const registration = await registerGrpcServer(kit, {
    server,
    service: 'hello',
    ...(options.advertise !== undefined
      ? { address: options.advertise }
      : host === '0.0.0.0' || host === '::'
        ? { port: bound }
        : { address: `${host}:${bound}` }),
    // no metadata: Go gRPC clients on etcd's resolver panic on a metadata object (docs/GRPC.md)
  })
  return { server, registration }
}

// The gRPC integration: a server registered in etcd, a client dialing it through the etcd resolver.
import { EtcdKit } from '@etcdkit/core'
import { registerEtcdResolver, registerGrpcServer } from '@etcdkit/grpc'
import * as grpc from '@grpc/grpc-js'
import common from './common.cjs'

const { assert, endpoints, namespace } = common
const { version } = (await import('@grpc/grpc-js/package.json', { with: { type: 'json' } })).default
const kit = new EtcdKit({ endpoints, namespace: namespace('grpc') })
const bytes = (b) => b
const service = {
  ping: {
    path: '/packtest.Echo/Ping',
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
}
const server = new grpc.Server()
server.addService(service, { ping: (call, cb) => cb(null, Buffer.from(`pong ${call.request}`)) })
const port = await new Promise((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
    err ? reject(err) : resolve(p),
  ),
)
const address = `127.0.0.1:${port}`
const reg = await registerGrpcServer(kit, { server, service: 'echo', address, drainDelay: 0 })
const resolver = registerEtcdResolver(kit)
const Echo = grpc.makeGenericClientConstructor(service, 'Echo')
const client = new Echo('etcdv3:///echo', grpc.credentials.createInsecure())
const reply = await new Promise((resolve, reject) =>
  client.ping(Buffer.from('1'), (err, r) => (err ? reject(err) : resolve(String(r)))),
)
assert.equal(reply, 'pong 1')
client.close()
await reg.close()
resolver.unregister()
await kit.close()
console.log(`grpc-js ${version}: ok`)

// Calls the Hello service through etcd: npx tsx src/client.ts [calls]
// With ETCD_ENDPOINTS it reaches the servers registered there (start some with src/server.ts); without,
// it starts an etcd and two servers of its own, so it runs alone.

import { EtcdKit } from '@etcdkit/core'
import { registerEtcdResolver } from '@etcdkit/grpc'
import { sharedEtcd } from '@etcdkit/testing'
import * as grpc from '@grpc/grpc-js'
import { echo, Hello, startHelloServer } from './hello.js'

const calls = Number(process.argv[2] ?? 10)
const etcd = await sharedEtcd()
const kit = new EtcdKit({ endpoints: etcd.endpoints })
const servers = etcd.started
  ? await Promise.all(['alpha', 'beta'].map((name) => startHelloServer(kit, { name, host: '127.0.0.1' })))
  : []

// etcdv3:///hello (the seed's form) and etcd:///services/hello (Go's naming/resolver form) both work
registerEtcdResolver(kit)
const client = new Hello('etcdv3:///hello', grpc.credentials.createInsecure())

try {
  for (let i = 1; i <= calls; i++) console.log(await echo(client, `hello ${i}`))
  const stream = client.Stream({ message: 'stream' }, { deadline: Date.now() + 5_000 })
  for await (const reply of stream) console.log((reply as { message: string }).message)
} catch (err) {
  console.error(`call failed: ${(err as Error).message}`)
  process.exitCode = 1
} finally {
  client.close()
  for (const { registration } of servers) await registration.close()
  await kit.close()
  await etcd.close()
}

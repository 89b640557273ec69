// A Hello server registered in etcd as `hello`: npx tsx src/server.ts [name] [port]
// Ctrl-C deregisters it first, then lets calls in flight finish, then closes the kit.

import { EtcdKit } from '@etcdkit/core'
import { sharedEtcd } from '@etcdkit/testing'
import { startHelloServer } from './hello.js'

const name = process.argv[2] ?? `server-${process.pid}`
const port = Number(process.argv[3] ?? 0)
const etcd = await sharedEtcd()
const kit = new EtcdKit({ endpoints: etcd.endpoints })
// ADVERTISE (host:port) overrides the address other hosts reach this server at
const { registration } = await startHelloServer(kit, {
  name,
  port,
  ...(process.env.ADVERTISE ? { advertise: process.env.ADVERTISE } : {}),
})
console.log(`${name}: serving Hello, registered as ${registration.key}`)
if (etcd.started)
  console.log(`etcd started for this demo; run clients with: ETCD_ENDPOINTS=${etcd.endpoints.join(',')}`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  console.log(`${name}: deregistering, then shutting down`)
  await registration.close()
  await kit.close()
  await etcd.close()
}
process.on('SIGINT', () => void stop())
process.on('SIGTERM', () => void stop())

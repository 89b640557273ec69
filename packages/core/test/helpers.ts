import { setTimeout as sleep } from 'node:timers/promises'
import { type SharedEtcd, sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import { EtcdKit, type EtcdKitOptions, silentLogger } from '../src/index.js'

let shared: Promise<SharedEtcd> | undefined

/** The run's etcd (ETCD_ENDPOINTS) or one started for this test file. */
export function etcd(): Promise<SharedEtcd> {
  shared ??= sharedEtcd()
  return shared
}

/** A kit on the shared etcd, in a namespace of its own unless one is given. */
export async function kit(options: EtcdKitOptions = {}): Promise<EtcdKit> {
  const { endpoints } = await etcd()
  return new EtcdKit({ endpoints, namespace: uniquePrefix('core'), logger: silentLogger, ...options })
}

/** Polls `check` until it returns true, or fails after `timeoutMs` with `what`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(20)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
}

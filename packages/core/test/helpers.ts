import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import { EtcdKit, type EtcdKitOptions, silentLogger } from '../src/index.js'

/** The run's etcd (ETCD_ENDPOINTS) or one started for this test file. */
export const etcd = sharedEtcd

/** A kit on the shared etcd, in a namespace of its own unless one is given. */
export async function kit(options: EtcdKitOptions = {}): Promise<EtcdKit> {
  const { endpoints } = await etcd()
  return new EtcdKit({ endpoints, namespace: uniquePrefix('core'), logger: silentLogger, ...options })
}

export { eventually } from '@etcdkit/testing'

/** Whether `p` has settled by the next timer tick, without waiting for it otherwise. */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  const pending = Symbol('pending')
  const winner = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise((resolve) => setTimeout(() => resolve(pending), 0)),
  ])
  return winner !== pending
}

/** Settles within `ms`, or fails the test naming `what` (a hang must not take the whole file's timeout). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import {
  DIALECT_NAMES,
  type DialectName,
  type DialectWriteSpec,
  EtcdKit,
  type EtcdKitOptions,
  silentLogger,
} from '../src/index.js'
import { bindWriter } from '../src/registry/dialects/index.js'

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

/**
 * Every registry dialect: the reliability tests run over this list (one kit or registration holding all of
 * them where the test allows, with a view of each), so a promise kept for `etcd` is checked for every one.
 */
export const DIALECTS: readonly DialectName[] = DIALECT_NAMES

/**
 * Every dialect as `register({ dialects })` takes it; go-zero with an `id` when given (a kit's instances
 * share its lease, so two registrations of one kit under one go-zero Key need ids).
 */
export const everyDialect = (goZeroId?: number): DialectWriteSpec[] =>
  DIALECTS.map((name) => (name === 'go-zero' && goZeroId !== undefined ? { name, id: goZeroId } : name))

/**
 * The key and value each dialect's framework writes for `address` of `service` (no metadata), as another
 * writer would put them raw (go-zero with the ID form `{service}.rpc/{goZeroId}`): for tests that write
 * registry entries behind the kit's back. The codecs are checked byte for byte against the frameworks'
 * fixtures in dialects.test.ts.
 */
export function rawEntries(
  service: string,
  address: string,
  goZeroId = 1,
): { dialect: DialectName; key: string; value: string }[] {
  return DIALECTS.map((dialect) => {
    const w = bindWriter(
      dialect === 'go-zero' ? { name: dialect, id: goZeroId } : dialect,
      { service, address, metadata: {} },
      { registryPrefix: 'services/' },
    )
    return { dialect, key: w.key('1'), value: w.value }
  })
}

import { randomBytes } from 'node:crypto'
import { type EtcdCluster, startEtcd } from './etcd.js'
import { etcdctl } from './etcdctl.js'

/** An etcd for tests that only read and write keys: the one the test runner started, or a new one. */
export interface SharedEtcd extends AsyncDisposable {
  readonly endpoints: string[]
  /** Whether this call started the etcd (no `ETCD_ENDPOINTS`); `close()` stops only such an etcd. */
  readonly started: boolean
  etcdctl(args: readonly string[], input?: string): Promise<string>
  /** Stops the etcd if this call started it; leaves a runner's etcd alone. */
  close(): Promise<void>
}

let current: Promise<SharedEtcd> | undefined
let resolved: SharedEtcd | undefined

/**
 * The etcd named by `ETCD_ENDPOINTS` (comma separated, as the test runner sets it), else a new throwaway
 * one. One per process: later calls return the same one until it is closed. Tests that stop, kill or
 * wipe etcd must call `startEtcd()` for an etcd of their own instead.
 */
export function sharedEtcd(): Promise<SharedEtcd> {
  current ??= open().catch((err: unknown) => {
    current = undefined
    throw err
  })
  return current
}

async function open(): Promise<SharedEtcd> {
  const fromEnv = process.env.ETCD_ENDPOINTS?.split(',')
    .map((e) => e.trim())
    .filter(Boolean)
  const own: EtcdCluster | undefined = fromEnv && fromEnv.length > 0 ? undefined : await startEtcd()
  const endpoints = own?.endpoints ?? fromEnv!
  const close = async () => {
    if (resolved === shared) {
      resolved = undefined
      current = undefined
    }
    await own?.close()
  }
  const shared: SharedEtcd = {
    endpoints,
    started: own !== undefined,
    etcdctl:
      own?.etcdctl ?? ((args, input) => etcdctl(endpoints, args, input === undefined ? {} : { input })),
    close,
    [Symbol.asyncDispose]: close,
  }
  resolved = shared
  return shared
}

/** A key prefix unique to this test (`t-<label>-<random>/`), so test files sharing one etcd never collide. */
export function uniquePrefix(label = 'test'): string {
  return `t-${label.replace(/[^A-Za-z0-9_.-]/g, '_')}-${randomBytes(4).toString('hex')}/`
}

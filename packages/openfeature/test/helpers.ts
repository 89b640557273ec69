import { EtcdKit, type EtcdKitOptions, type Logger, silentLogger } from '@etcdkit/core'
import { prefixConfig } from '@etcdkit/core/integration'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import { OpenFeature } from '@openfeature/server-sdk'
import { EtcdKitFlagProvider, type EtcdKitFlagProviderOptions, FlagAdmin } from '../src/index.js'

/** The run's etcd (ETCD_ENDPOINTS) or one started for this test file. */
export const etcd = sharedEtcd

export { eventually } from '@etcdkit/testing'

/** A kit on the shared etcd, in a namespace of its own unless one is given. */
export async function kit(options: EtcdKitOptions = {}): Promise<EtcdKit> {
  const { endpoints } = await etcd()
  return new EtcdKit({ endpoints, namespace: uniquePrefix('flags'), logger: silentLogger, ...options })
}

/** A logger keeping warnings, to check that refusals are logged. */
export function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  return { ...silentLogger, warn: (_obj: unknown, msg?: string) => void warnings.push(String(msg)), warnings }
}

let domains = 0

/**
 * A provider on `k`, set on an OpenFeature domain of its own (tests run concurrently in one process and
 * OpenFeature's API is global), and a client of that domain.
 */
export async function provided(k: EtcdKit, options: Omit<EtcdKitFlagProviderOptions, 'kit'> = {}) {
  const provider = new EtcdKitFlagProvider({ kit: k, ...options })
  const domain = `test-${process.pid}-${++domains}`
  await OpenFeature.setProviderAndWait(domain, provider)
  const client = OpenFeature.getClient(domain)
  return {
    provider,
    client,
    domain,
    admin: new FlagAdmin(k, options.prefix === undefined ? {} : { prefix: options.prefix }),
  }
}

/** Resolves when `emitter` next emits `event` (or rejects after `ms`). */
export function next<T>(subscribe: (listener: (value: T) => void) => void, ms = 5_000, what = 'the event') {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not seen within ${ms} ms`)), ms)
    subscribe((value) => {
      clearTimeout(timer)
      resolve(value)
    })
  })
}

/** The flags prefix's config machinery on `k` (what the provider reads): raw writes around `FlagAdmin`. */
export function flagsOf(k: EtcdKit) {
  return prefixConfig(k, 'flags/')
}

// What the CLI and the console show, read through the kit: services with their processes and lease TTLs,
// lock and election queues, and the config tree.
import type { CatalogInstance, EtcdKit } from '@etcdkit/core'
import { inspect, type Owner, type Queue } from '@etcdkit/core/integration'

export type { Contender, Owner, Queue, SessionRecord } from '@etcdkit/core/integration'

export interface ServiceInstanceRow extends Owner {
  service: string
  /** The registry dialect the instance was read in (`etcd` unless `--dialect`). */
  dialect: string
  address: string
  key: string
  metadata: Record<string, unknown>
  weight: number
  modRevision: string
}

/** Resolves the owners of `leases` (hex): session records and TTLs, one read each, in parallel. */
export function owners(kit: EtcdKit, leases: Iterable<string>): Promise<Map<string, Owner>> {
  return inspect(kit).owners(leases)
}

/** Every instance of every service (or of `service`), with the process and TTL of its lease. */
export async function serviceRows(
  kit: EtcdKit,
  services: ReadonlyMap<string, readonly CatalogInstance[]>,
  service?: string,
): Promise<ServiceInstanceRow[]> {
  const instances = [...services.values()]
    .flat()
    .filter((i) => service === undefined || i.service === service)
  const who = await owners(
    kit,
    instances.map((i) => i.lease),
  )
  return instances.map((i) => ({
    service: i.service,
    dialect: i.dialect,
    address: i.address,
    key: i.key,
    metadata: { ...i.metadata },
    weight: i.weight,
    modRevision: i.modRevision,
    ...(who.get(i.lease) ?? { lease: i.lease, ttl: undefined, process: 'unknown' as const }),
  }))
}

/** The lock and election queues under `prefix` (kit-relative), holders first. */
export function queues(kit: EtcdKit, prefix = ''): Promise<Queue[]> {
  return inspect(kit).queues(prefix)
}

/** A config key as stored: shared `{configPrefix}{key}`, or a service's override `{configPrefix}{service}/{key}`. */
export interface ConfigEntry {
  key: string
  value: string
  /** The service whose override this is, when the key starts with a registered service's name. */
  service?: string
}

/** The config tree: every key under the config prefix with its text, overrides attributed to known services. */
export function configEntries(
  snapshot: ReadonlyMap<string, string>,
  services: Iterable<string>,
): ConfigEntry[] {
  const known = [...services]
  return [...snapshot.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => {
      const service = known.find((s) => key.startsWith(`${s}/`))
      return service === undefined ? { key, value } : { key, value, service }
    })
}

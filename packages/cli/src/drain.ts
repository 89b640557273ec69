// Drain requests: an operator asks the kit that owns a registration to take it out of traffic. The owner
// honours it by writing `weight: 0` itself, so its registry never fights the tool that asked (see
// docs/PROTOCOL.md, "Drain requests").
import { hostname } from 'node:os'
import type { EtcdKit } from '@etcdkit/core'
import {
  DRAIN_PREFIX,
  type DrainRecord,
  type DrainRequest,
  drainKey,
  parseDrainRequest,
  SESSIONS_PREFIX,
} from '@etcdkit/core/integration'

/** Why a drain (or its cancellation) was refused: the message says what to do instead. */
export class DrainRefusedError extends Error {
  override name = 'DrainRefusedError'
  readonly code = 'ETCDKIT_DRAIN_REFUSED'
  /** The console answers 409: the request was understood, the registration's state refuses it. */
  readonly statusCode = 409
}

/**
 * Asks the owner of registration `key` (namespace-relative, `services/{service}/{address}`) to drain it. The
 * request is put on the owner's own lease, so it goes with the owner; it is refused when the key is gone,
 * has no lease, its lease has no session record (not an etcdkit: nothing would honour the request), or
 * the lease has expired.
 */
export async function requestDrain(kit: EtcdKit, key: string, writer: string): Promise<DrainRequest> {
  const ks = { key: (name: string) => `${kit.namespace}${name}` }
  const [reg] = (await kit.client.get(ks.key(key)).exec()).kvs
  if (!key.startsWith(kit.registryPrefix) || !reg)
    throw new DrainRefusedError(`no registration ${JSON.stringify(key)}: nothing to drain`)
  if (reg.lease === '0')
    throw new DrainRefusedError(
      `${JSON.stringify(key)} has no lease, so no process owns it: deregister it instead of draining it`,
    )
  const lease = BigInt(reg.lease).toString(16)
  const record: DrainRecord = { writer, hostname: hostname(), pid: process.pid, at: new Date().toISOString() }
  let res: Awaited<ReturnType<ReturnType<EtcdKit['client']['if']>['commit']>>
  try {
    res = await kit.client
      .if(ks.key(key), 'Lease', '==', reg.lease)
      .and(ks.key(`${SESSIONS_PREFIX}${lease}`), 'Version', '>', 0)
      .then(
        kit.client
          .put(ks.key(drainKey(lease, key)))
          .value(JSON.stringify(record))
          .lease(reg.lease),
      )
      .commit()
  } catch (err) {
    // etcd refuses a put on a lease it no longer has: tell that apart from any other failure by asking it
    if ((await leaseTtl(kit, reg.lease)) < 0)
      throw new DrainRefusedError(
        `the owner of ${JSON.stringify(key)} is gone (lease ${lease} expired): deregister the key instead`,
      )
    throw err
  }
  if (!res.succeeded) {
    const [now] = (await kit.client.get(ks.key(key)).exec()).kvs
    if (!now || now.lease !== reg.lease)
      throw new DrainRefusedError(`${JSON.stringify(key)} changed owner meanwhile: look again and retry`)
    throw new DrainRefusedError(
      `the owner of ${JSON.stringify(key)} (lease ${lease}) is not an etcdkit: it writes no session record, ` +
        'so nothing would honour a drain request; set its weight to 0 where it registers',
    )
  }
  return { lease, key, record }
}

/** Seconds left on a lease (decimal id); `-1` when etcd no longer has it, `0` when it could not be asked. */
async function leaseTtl(kit: EtcdKit, id: string): Promise<number> {
  try {
    return Number((await kit.client.leaseClient.leaseTimeToLive({ ID: id })).TTL)
  } catch {
    return 0
  }
}

/** Withdraws a drain request: the owner restores the weight it registered with. */
export async function cancelDrain(kit: EtcdKit, key: string): Promise<boolean> {
  // requests are few (one per drained instance): one plain range is enough
  const kvs = await kit.client.getAll().prefix(`${kit.namespace}${DRAIN_PREFIX}`).exec()
  const mine = kvs.kvs
    .map((kv) => ({
      kv,
      req: parseDrainRequest(kv.key.toString().slice(kit.namespace.length), kv.value.toString()),
    }))
    .filter((x) => x.req?.key === key)
  for (const { kv } of mine) await kit.client.delete().key(kv.key).exec()
  return mine.length > 0
}

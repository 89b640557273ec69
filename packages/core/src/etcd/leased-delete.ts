// Deleting a key that hangs off a lease, as an intent that outlives outages (lock release, deregistration).
import { GRPCDeadlineExceededError, type ITxnRequest, type KVClient } from 'etcd3'
import { isTerminal } from '../errors.js'
import { Backoff, sleep } from '../util.js'
import type { Lease } from './session.js'

/** How a leased delete ended. */
export type LeasedDeleteOutcome =
  /** etcd confirmed it: the key is gone, or it no longer hangs off this lease (someone else's now). */
  | 'deleted'
  /** The lease is gone (lost, revoked, or the session closed): etcd deletes the key with it. */
  | 'lease-gone'

/**
 * Deletes `key` — with `onlyIfLease`, only if it still hangs off `lease` (one txn comparing the key's lease,
 * so a key written again by another process or lease is left alone), else at once (one DeleteRange, for keys
 * that name their lease, like lock keys) — retrying with backoff while etcd cannot be reached, until etcd
 * confirms or the lease is gone (then etcd deletes the key with it). Retries are capped at 500 ms apart so a deletion lands
 * soon after etcd answers again. Rejects only with a refusal retrying cannot change (`isTerminal`).
 */
export async function deleteLeasedKey(
  kv: KVClient,
  /** One key, or the keys of one registration in several dialects: deleted together, in one txn. */
  key: Buffer | readonly Buffer[],
  lease: Lease,
  onRetry: (err: unknown) => void,
  onlyIfLease: boolean,
): Promise<LeasedDeleteOutcome> {
  const backoff = new Backoff(25, 500)
  // A call sent while the cluster elects a leader waits for its whole deadline: the first attempts get 1 s,
  // so a delete lands soon after the election; the deadline doubles (to 8 s) for an etcd that is just slow.
  let attemptMs = 1_000
  for (;;) {
    if (lease.signal.aborted) return 'lease-gone'
    const options = { deadline: Date.now() + attemptMs }
    try {
      if (!Buffer.isBuffer(key))
        await kv.txn(deleteAll(key as readonly Buffer[], lease, onlyIfLease), options)
      else if (onlyIfLease) await kv.txn(deleteIfLease(key, lease), options)
      else await kv.deleteRange({ key }, options)
      return 'deleted'
    } catch (err) {
      if (isTerminal(err)) throw err
      if (lease.signal.aborted) return 'lease-gone'
      if (err instanceof GRPCDeadlineExceededError) attemptMs = Math.min(attemptMs * 2, 8_000)
      onRetry(err)
      // no abort listener on the lease's signal (many deletions may wait at once); the next turn checks it
      await sleep(backoff.next())
    }
  }
}

/** A txn deleting `key` only while it hangs off `lease`. */
function deleteIfLease(key: Buffer, lease: Lease): ITxnRequest {
  return {
    compare: [{ key, target: 'Lease', result: 'Equal', lease: lease.id }],
    success: [{ request_delete_range: { key } }],
    failure: [],
  }
}

/** One txn deleting every key (each in a txn of its own, nested, when only while it hangs off `lease`). */
function deleteAll(keys: readonly Buffer[], lease: Lease, onlyIfLease: boolean): ITxnRequest {
  return {
    compare: [],
    success: keys.map((key) =>
      onlyIfLease ? { request_txn: deleteIfLease(key, lease) } : { request_delete_range: { key } },
    ),
    failure: [],
  }
}

import type { IKeyValue, KVClient } from 'etcd3'
import { failureKind, TooLargeError } from './errors.js'
import { prefixEnd } from './util.js'

/** Keys per page of a prefix read; halved while a page exceeds grpc-js's 4 MiB receive limit. */
const PAGE_KEYS = 1_000
/** Times a paged read starts over because its pinned revision was compacted meanwhile. */
const COMPACTED_RESTARTS = 3
/**
 * Prefix reads in flight at once per kit. A kit opening many views together (1,000 services) would
 * otherwise send every read at once, each with the call deadline running from the start: on a busy etcd the
 * last ones time out and their retries add to the load. Queued reads start their deadline when sent.
 */
export const LIST_CONCURRENCY = 16
const ZERO = Buffer.from([0])

/**
 * The kit's view of etcd's key space: every key it reads or writes goes under `namespace`, and comes back
 * without it. Raw KV calls (not etcd3's builders) keep the hot paths free of per-call allocations.
 */
export class Keyspace {
  readonly #ns: Buffer
  /** Keys per page of `list()`; for tests. */
  pageKeys = PAGE_KEYS
  #listing = 0
  readonly #queued: Array<() => void> = []
  constructor(
    readonly kv: KVClient,
    namespace: string,
  ) {
    this.#ns = Buffer.from(namespace)
  }

  key(key: string): Buffer {
    return this.#ns.length === 0 ? Buffer.from(key) : Buffer.concat([this.#ns, Buffer.from(key)])
  }

  /** [start, end) of every key beginning with `prefix`. */
  range(prefix: string): { key: Buffer; range_end: Buffer } {
    const key = this.key(prefix)
    return { key, range_end: prefixEnd(key) }
  }

  /** The kit-relative name of a key read from etcd. */
  name(key: Buffer): string {
    // toString with a start offset: no subarray allocated per key (100k keys at a view's first read)
    return key.toString('utf8', this.#ns.length)
  }

  /**
   * Reads every key under `prefix`, in pages all pinned at the revision of the first, so the result is one
   * consistent snapshot however large the prefix is (one answer may not exceed grpc-js's 4 MiB receive
   * limit: a prefix another team filled would otherwise fail every read). A page too large is read again
   * with fewer keys; a single key-value too large to receive rejects with `TooLargeError`. Resolves with the
   * key-values and the revision of the read.
   */
  async list(prefix: string): Promise<{ kvs: IKeyValue[]; revision: bigint }> {
    if (this.#listing >= LIST_CONCURRENCY) await new Promise<void>((start) => this.#queued.push(start))
    else this.#listing++
    try {
      for (let restarts = 0; ; restarts++) {
        try {
          return await this.#list(prefix)
        } catch (err) {
          // the pinned revision was compacted between two pages: read again at a newer one
          if (restarts >= COMPACTED_RESTARTS || !/compacted/i.test((err as Error)?.message ?? '')) throw err
        }
      }
    } finally {
      // hand the slot to the next queued read, first come first served
      const next = this.#queued.shift()
      if (next) next()
      else this.#listing--
    }
  }

  async #list(prefix: string): Promise<{ kvs: IKeyValue[]; revision: bigint }> {
    const { key, range_end } = this.range(prefix)
    let from = key
    let revision: bigint | undefined
    let limit = this.pageKeys
    const kvs: IKeyValue[] = []
    for (;;) {
      let res: Awaited<ReturnType<KVClient['range']>>
      try {
        res = await this.kv.range({
          key: from,
          range_end,
          limit: String(limit),
          ...(revision === undefined ? {} : { revision: revision.toString() }),
        })
      } catch (err) {
        if (failureKind(err) !== 'large') throw err
        if (limit === 1)
          throw new TooLargeError(
            `reading ${JSON.stringify(this.name(from))} (under key prefix ${JSON.stringify(prefix)}): one key-value exceeds what one etcd answer may carry`,
            err,
          )
        limit = Math.max(1, Math.floor(limit / 2))
        continue
      }
      revision ??= BigInt(res.header.revision)
      for (const kv of res.kvs) kvs.push(kv)
      const last = res.kvs[res.kvs.length - 1]
      if (!res.more || last === undefined) return { kvs, revision }
      from = Buffer.concat([last.key, ZERO]) // the next key after the last one read
    }
  }
}

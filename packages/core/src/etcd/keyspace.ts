import type { IKeyValue, KVClient } from 'etcd3'
import { failureKind, TooLargeError } from '../errors.js'
import { prefixEnd } from '../util.js'

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
/**
 * Queued prefix reads sent together as one read-only txn (one range per prefix, one revision for all). Each
 * call costs etcd a linearizable read and the client a gRPC call: 1,000 views read one prefix per call
 * cost etcd about 4x the CPU of the same ranges in txns of 64 (etcd refuses more than 128 operations).
 */
export const LIST_BATCH = 64
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
  /** Prefixes per batched read: LIST_BATCH, or less on an etcd whose `--max-txn-ops` is lower. */
  #batch = LIST_BATCH
  readonly #queued: PendingList[] = []
  constructor(
    readonly kv: KVClient,
    namespace: string,
  ) {
    this.#ns = Buffer.from(namespace)
  }

  key(key: string): Buffer {
    return this.#ns.length === 0 ? Buffer.from(key) : Buffer.concat([this.#ns, Buffer.from(key)])
  }

  /** One key (namespace-relative) and the revision it was read at, in the shape of `list()`; `via`: see `list()`. */
  async get(name: string, via: KVClient = this.kv): Promise<Listed> {
    const res = await via.range({ key: this.key(name) })
    return { kvs: res.kvs, revision: BigInt(res.header.revision) }
  }

  /**
   * [start, end) of every key beginning with `prefix`. The empty prefix of a kit without a namespace is the
   * whole key space: etcd refuses an empty key ("key is not provided"), so it is `["\0", "\0")`, which etcd
   * reads as every key from "\0" on (`etcdctl --from-key ""`); no key is empty.
   */
  range(prefix: string): { key: Buffer; range_end: Buffer } {
    const key = this.key(prefix)
    if (key.length === 0) return { key: Buffer.from([0]), range_end: Buffer.from([0]) }
    return { key, range_end: prefixEnd(key) }
  }

  /** The whole key of a kit-relative name, namespace included, as text: what log lines and errors show. */
  full(name: string): string {
    return this.key(name).toString()
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
   * key-values and the revision of the read. Reads queued behind LIST_CONCURRENCY others are sent together,
   * one txn for up to LIST_BATCH prefixes, all read at one revision. `via`: a client of one member known
   * to answer (the watch stream's, see `WatchHub.reader`), instead of etcd3's pick per call, which may land
   * on a member still cut off and wait out the call timeout; still a linearizable read.
   */
  list(prefix: string, via: KVClient = this.kv): Promise<Listed> {
    return new Promise<Listed>((resolve, reject) => {
      this.#queued.push({ prefix, kv: via, resolve, reject })
      this.#send()
    })
  }

  /**
   * Sends queued reads while fewer than LIST_CONCURRENCY are in flight, first come first served: a read
   * alone goes as it is; reads that queued behind a full set go up to LIST_BATCH at a time in one txn.
   */
  #send() {
    while (this.#listing < LIST_CONCURRENCY && this.#queued.length > 0) {
      // reads through the first one's client, with those queued for the same client
      const via = this.#queued[0]!.kv
      const batch: PendingList[] = []
      const rest: PendingList[] = []
      for (const q of this.#queued) (q.kv === via && batch.length < this.#batch ? batch : rest).push(q)
      this.#queued.splice(0, this.#queued.length, ...rest)
      this.#listing++
      this.#read(via, batch)
        // nothing expected here (every read settles its own); if it comes, no read of the batch may hang
        .catch((err: unknown) => {
          for (const { reject } of batch) reject(err)
        })
        .finally(() => {
          this.#listing--
          this.#send()
        })
    }
  }

  async #read(kv: KVClient, batch: PendingList[]): Promise<void> {
    if (batch.length === 1) {
      const [one] = batch as [PendingList]
      await this.#listOne(kv, one.prefix).then(one.resolve, one.reject)
      return
    }
    let res: Awaited<ReturnType<KVClient['txn']>>
    try {
      res = await kv.txn({
        compare: [],
        success: batch.map(({ prefix }) => ({
          request_range: { ...this.range(prefix), limit: String(this.pageKeys) },
        })),
        failure: [],
      })
    } catch (err) {
      const kind = failureKind(err)
      // an etcd whose --max-txn-ops is below the batch: smaller batches from now on
      const tooMany = /too many operations in txn/i.test((err as Error)?.message ?? '')
      if (tooMany) this.#batch = Math.min(this.#batch, Math.max(1, Math.floor(batch.length / 2)))
      // one answer too large for grpc-js: halves, down to single reads (which page with fewer keys)
      if (kind === 'large' || tooMany) {
        const half = Math.ceil(batch.length / 2)
        await this.#read(kv, batch.slice(0, half))
        await this.#read(kv, batch.slice(half))
        return
      }
      // one prefix the user may not read refuses the whole txn: each read alone, to fail only that one
      if (kind === 'denied') {
        for (const one of batch) await this.#read(kv, [one])
        return
      }
      for (const { reject } of batch) reject(err)
      return
    }
    const revision = BigInt(res.header.revision)
    await Promise.all(
      batch.map(async ({ prefix, resolve, reject }, i) => {
        try {
          const range = res.responses[i]?.response_range
          if (!range)
            throw new Error(`etcd answered ${res.responses.length} of the txn's ${batch.length} ranges`)
          const last = range.kvs[range.kvs.length - 1]
          if (!range.more || last === undefined) return resolve({ kvs: range.kvs, revision })
          // more than a page under this prefix: the rest at the txn's revision (or all again if compacted)
          resolve(await this.#listOne(kv, prefix, { kvs: range.kvs, revision, from: after(last.key) }))
        } catch (err) {
          reject(err)
        }
      }),
    )
  }

  /** One prefix, in pages; from its first page, or from `start` (pages already read at its revision). */
  async #listOne(kv: KVClient, prefix: string, start?: Listed & { from: Buffer }): Promise<Listed> {
    for (let restarts = 0; ; restarts++) {
      try {
        return await this.#list(kv, prefix, restarts === 0 ? start : undefined)
      } catch (err) {
        // the pinned revision was compacted between two pages: read again at a newer one
        if (restarts >= COMPACTED_RESTARTS || !/compacted/i.test((err as Error)?.message ?? '')) throw err
      }
    }
  }

  async #list(kv: KVClient, prefix: string, start?: Listed & { from: Buffer }): Promise<Listed> {
    const { key, range_end } = this.range(prefix)
    let from = start?.from ?? key
    let revision = start?.revision
    let limit = this.pageKeys
    const kvs: IKeyValue[] = start ? [...start.kvs] : []
    for (;;) {
      let res: Awaited<ReturnType<KVClient['range']>>
      try {
        res = await kv.range({
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
      from = after(last.key)
    }
  }
}

/** The key-values under a prefix and the revision they were read at. */
type Listed = { kvs: IKeyValue[]; revision: bigint }

interface PendingList {
  prefix: string
  /** The client it is read through. */
  kv: KVClient
  resolve(listed: Listed): void
  reject(err: unknown): void
}

/** The next key after `key`. */
const after = (key: Buffer) => Buffer.concat([key, ZERO])

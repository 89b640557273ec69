import type { IKeyValue, KVClient } from 'etcd3'
import { prefixEnd } from './util.js'

/**
 * The kit's view of etcd's key space: every key it reads or writes goes under `namespace`, and comes back
 * without it. Raw KV calls (not etcd3's builders) keep the hot paths free of per-call allocations.
 */
export class Keyspace {
  readonly #ns: Buffer
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
    return key.subarray(this.#ns.length).toString()
  }

  /** Reads every key under `prefix`; resolves with the key-values and the revision of the read. */
  async list(prefix: string): Promise<{ kvs: IKeyValue[]; revision: bigint }> {
    const res = await this.kv.range(this.range(prefix))
    return { kvs: res.kvs, revision: BigInt(res.header.revision) }
  }
}

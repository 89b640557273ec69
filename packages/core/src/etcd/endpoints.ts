// Which etcd member a long-lived stream (the session's keepalive, the watch stream) is opened on.
import { Etcd3, type IOptions, type KVClient, type LeaseClient, type WatchClient } from 'etcd3'

/** A member to open a stream on, with the clients that reach only it. */
export interface StreamEndpoint {
  /** The endpoint as configured (`host:port` or a URL). */
  readonly endpoint: string
  readonly leaseClient: LeaseClient
  readonly watchClient: WatchClient
  /** Unary calls through the same client: one refused for an expired token makes it authenticate again. */
  readonly kv: KVClient
}

/** Where a long-lived stream is opened: one member at a time, another when it stops answering. */
export interface StreamSource {
  /** Whether there is more than one member to choose from. */
  readonly several: boolean
  /** A member for a new stream. */
  pick(): StreamEndpoint
  /** Every member, for checks that ask them all. */
  each(): StreamEndpoint[]
  /** A stream on `endpoint` broke or stopped answering. */
  failed(endpoint: string): void
  /**
   * etcd answered on `endpoint` (a keepalive, a unary call): etcd is reachable; every listener of
   * `onAnswered` is told, so a stream stuck since a partition can be checked at once.
   */
  answered(endpoint: string | undefined): void
  /** Calls `listener` on each `answered`, with its endpoint; returns the unsubscribe. */
  onAnswered(listener: (endpoint: string | undefined) => void): () => void
}

/**
 * etcd3 picks a random member per call, and grpc-js keeps using a connection that stopped answering until
 * its HTTP/2 keepalive gives up (15 s here): a stream reopened "anywhere" may land on the same silent
 * member again. So a stream that has to leave a member is opened on a chosen one, through a client per
 * endpoint (an `Etcd3` with that one host: etcd3's public API, with its auth and TLS; grpc-js shares the
 * TCP connection with the main client's when the options match), and a member that just failed is not
 * chosen again for `quarantineMs` unless every member failed.
 */
export class StreamEndpoints implements StreamSource {
  readonly endpoints: readonly string[]
  readonly #main: Etcd3
  readonly #options: IOptions
  readonly #quarantineMs: number
  readonly #clients = new Map<string, Etcd3>()
  readonly #failedAt = new Map<string, number>()
  readonly #onAnswered = new Set<(endpoint: string | undefined) => void>()
  /** When each endpoint last answered (`answered`): one that answered since it failed is not avoided. */
  readonly #answeredAt = new Map<string, number>()
  #closed = false

  /**
   * @param main the kit's client: used as is when there is only one endpoint
   * @param options the options `main` was built with; each endpoint's client gets them with its one host
   */
  constructor(endpoints: readonly string[], main: Etcd3, options: IOptions, quarantineMs = 10_000) {
    this.endpoints = endpoints
    this.#main = main
    this.#options = options
    this.#quarantineMs = quarantineMs
  }

  /** Whether there is another member to move a stream to. */
  get several(): boolean {
    return this.endpoints.length > 1
  }

  /**
   * A member for a new stream: one at random among those that did not fail within the quarantine or
   * answered since (so the kits of a fleet spread out), else the one that failed longest ago.
   */
  pick(): StreamEndpoint {
    const now = performance.now()
    const healthy = this.endpoints.filter((e) => {
      const failed = this.#failedAt.get(e) ?? -Infinity
      return now - failed >= this.#quarantineMs || (this.#answeredAt.get(e) ?? -Infinity) > failed
    })
    // while members fail, one that answered since (a keepalive, a check) is a better bet than one that
    // merely did not fail yet: it may hold a connection still stuck since the partition
    const troubled = healthy.length < this.endpoints.length
    const proven = troubled
      ? healthy.filter((e) => now - (this.#answeredAt.get(e) ?? -Infinity) < this.#quarantineMs)
      : []
    const among = proven.length > 0 ? proven : healthy
    const endpoint =
      among.length > 0
        ? among[Math.floor(Math.random() * among.length)]!
        : [...this.endpoints].sort((a, b) => this.#failedAt.get(a)! - this.#failedAt.get(b)!)[0]!
    return this.#endpoint(endpoint)
  }

  each(): StreamEndpoint[] {
    return this.endpoints.map((e) => this.#endpoint(e))
  }

  #endpoint(endpoint: string): StreamEndpoint {
    const client = this.#clientOf(endpoint)
    return { endpoint, leaseClient: client.leaseClient, watchClient: client.watchClient, kv: client.kv }
  }

  /** When a stream on each endpoint last broke or went silent (`performance.now()` ms), for `kit.health()`. */
  get failures(): ReadonlyMap<string, number> {
    return this.#failedAt
  }

  /** A stream on `endpoint` broke or stopped answering: prefer the other members for a while. */
  failed(endpoint: string) {
    if (this.several) this.#failedAt.set(endpoint, performance.now())
  }

  answered(endpoint: string | undefined) {
    if (endpoint !== undefined && this.several) this.#answeredAt.set(endpoint, performance.now())
    for (const listener of this.#onAnswered) listener(endpoint)
  }

  onAnswered(listener: (endpoint: string | undefined) => void): () => void {
    this.#onAnswered.add(listener)
    return () => this.#onAnswered.delete(listener)
  }

  /** Closes the per-endpoint clients (not the main one). Call after the streams were cancelled. */
  close() {
    this.#closed = true
    for (const client of this.#clients.values()) client.close()
    this.#clients.clear()
  }

  #clientOf(endpoint: string): Etcd3 {
    if (!this.several || this.#closed) return this.#main
    let client = this.#clients.get(endpoint)
    if (!client) {
      client = new Etcd3({ ...this.#options, hosts: [endpoint] })
      this.#clients.set(endpoint, client)
    }
    return client
  }
}

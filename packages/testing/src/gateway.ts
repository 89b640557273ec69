// etcd's server-side lock and election (v3lock, v3election) through its gRPC gateway, for interop tests.
import type { TestCertificates } from './certs.js'
import { type Gateway, gatewayJson } from './etcd.js'

// No Node client exposes etcd's v3lock and v3election services, which jetcd, Rust's etcd-client and
// etcd3-py call. The gRPC gateway on every client URL does (JSON over HTTP, bytes as base64, int64 as
// decimal strings; etcd 3.4: etcdserver/api/v3lock/v3lockpb/v3lock.proto, v3election/v3electionpb/
// v3election.proto), so a test can be that other client without installing it.

export interface EtcdGatewayOptions {
  /** The CA (and client certificate, with `mutual`) of a TLS etcd started by `startEtcd({ tls })`. */
  certs?: TestCertificates
  /** Present the client certificate too (an etcd started with `tls: 'mutual'`). @default false */
  mutual?: boolean
  /** An auth token (`/v3/auth/authenticate`) sent as `Authorization` when etcd has auth enabled. */
  token?: string
}

/** What a server-side lock or campaign call can take besides its name. */
export interface GatewayHoldOptions {
  /**
   * The lease the key is put on (decimal or bigint). Pitfall: without one (0), etcd grants a 60 s lease
   * for the call and never keeps it alive, so the lock or candidacy silently ends after 60 s. @default 0
   */
  lease?: bigint | string
  /** Aborting it ends the HTTP request; etcd cancels the call and deletes the waiting key. */
  signal?: AbortSignal
}

/** A lock etcd's `Lock` service holds for us: its key is `{name}/{lease hex}`, Go's Mutex layout. */
export interface GatewayLock {
  readonly key: string
  /** The key's create revision: the fencing token (etcd's own `IsOwner` compares it). */
  readonly createRevision: bigint
}

/** etcd's `LeaderKey`: what `proclaim` and `resign` need to act for a campaign's winner. */
export interface GatewayLeaderKey {
  readonly name: string
  readonly key: string
  readonly rev: bigint
  readonly lease: bigint
}

/** One key as the gateway returns it, bytes decoded as UTF-8. */
export interface GatewayKeyValue {
  readonly key: string
  readonly value: string
  readonly createRevision: bigint
  readonly modRevision: bigint
  /** 0n when the key has no lease. */
  readonly lease: bigint
}

export interface EtcdGateway {
  /** `POST /v3/lock/lock`: waits in the `{name}/` queue until held (Go `Mutex` semantics, no timeout). */
  lock(name: string, options?: GatewayHoldOptions): Promise<GatewayLock>
  /** `POST /v3/lock/unlock`: deletes the lock key. */
  unlock(key: string): Promise<void>
  /** `POST /v3/election/campaign`: waits until `value` leads election `name`. */
  campaign(name: string, value: string, options?: GatewayHoldOptions): Promise<GatewayLeaderKey>
  /** `POST /v3/election/proclaim`: changes the leader's value (fails once it is not the leader). */
  proclaim(leader: GatewayLeaderKey, value: string): Promise<void>
  /** `POST /v3/election/leader`: the current leader's key, or undefined when nobody campaigns. */
  leader(name: string): Promise<GatewayKeyValue | undefined>
  /** `POST /v3/election/resign`: deletes the leader key if it is still this term's. */
  resign(leader: GatewayLeaderKey): Promise<void>
  /** `POST /v3/lease/grant`: a lease nobody keeps alive (it expires after `ttl` seconds). */
  grant(ttl: number): Promise<bigint>
  /** `POST /v3/lease/revoke`. */
  revoke(lease: bigint): Promise<void>
  /** `POST /v3/lease/timetolive`: remaining and granted TTL in seconds; `ttl` is -1 once expired. */
  timeToLive(lease: bigint): Promise<{ ttl: number; grantedTtl: number }>
  /** `POST /v3/kv/range` on one key. */
  get(key: string): Promise<GatewayKeyValue | undefined>
  /**
   * Puts `key` only if `lockKey` still has create revision `token` (Go's `IsOwner` guard in one txn):
   * resolves to whether it was written.
   */
  putIfOwner(lockKey: string, token: bigint, key: string, value: string): Promise<boolean>
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64')
const unb64 = (field: unknown) =>
  typeof field === 'string' ? Buffer.from(field, 'base64').toString('utf8') : ''
// int64 fields arrive as decimal strings and are omitted when zero
const int64 = (field: unknown) =>
  typeof field === 'string' || typeof field === 'number' ? BigInt(field) : 0n

function keyValue(kv: unknown): GatewayKeyValue | undefined {
  if (typeof kv !== 'object' || kv === null) return undefined
  const f = kv as Record<string, unknown>
  return {
    key: unb64(f.key),
    value: unb64(f.value),
    createRevision: int64(f.create_revision),
    modRevision: int64(f.mod_revision),
    lease: int64(f.lease),
  }
}

/**
 * A typed client of etcd's gateway on `endpoint` (`127.0.0.1:2379` or a URL) for the calls no Node etcd
 * client has: server-side `Lock`/`Unlock` and `Campaign`/`Proclaim`/`Leader`/`Resign`, plus the few KV and
 * lease calls a test needs around them. Failures reject with the path, HTTP status and etcd's message.
 */
export function etcdGateway(endpoint: string, options: EtcdGatewayOptions = {}): EtcdGateway {
  const origin = /^https?:\/\//.test(endpoint)
    ? new URL(endpoint).origin
    : `${options.certs ? 'https' : 'http'}://${endpoint}`
  const gw: Gateway = { certs: options.certs, mutual: options.mutual ?? false }
  const headers: Record<string, string> = options.token ? { authorization: options.token } : {}

  async function call(path: string, body: unknown, signal?: AbortSignal): Promise<Record<string, unknown>> {
    // a held-until-granted call has no time limit of its own: the caller's signal bounds it
    const timeoutMs = path === '/v3/lock/lock' || path === '/v3/election/campaign' ? 0 : 5_000
    const { status, json } = await gatewayJson(gw, `${origin}${path}`, body, headers, timeoutMs, signal)
    if (status < 200 || status >= 300 || 'error' in json)
      throw new Error(`etcd gateway ${path}: HTTP ${status} ${JSON.stringify(json)}`)
    return json
  }
  const leaderKey = (l: GatewayLeaderKey) => ({
    name: b64(l.name),
    key: b64(l.key),
    rev: String(l.rev),
    lease: String(l.lease),
  })

  const gateway: EtcdGateway = {
    async lock(name, opts = {}) {
      const res = await call(
        '/v3/lock/lock',
        { name: b64(name), lease: String(opts.lease ?? 0) },
        opts.signal,
      )
      const key = unb64(res.key)
      const kv = await gateway.get(key)
      // a lease that ran out between the grant and this read leaves no key: the lock is already gone
      if (!kv) throw new Error(`etcd gateway /v3/lock/lock: the lock key ${key} is gone already`)
      return { key, createRevision: kv.createRevision }
    },
    async unlock(key) {
      await call('/v3/lock/unlock', { key: b64(key) })
    },
    async campaign(name, value, opts = {}) {
      const res = await call(
        '/v3/election/campaign',
        { name: b64(name), value: b64(value), lease: String(opts.lease ?? 0) },
        opts.signal,
      )
      const l = res.leader as Record<string, unknown>
      return { name: unb64(l.name), key: unb64(l.key), rev: int64(l.rev), lease: int64(l.lease) }
    },
    async proclaim(leader, value) {
      await call('/v3/election/proclaim', { leader: leaderKey(leader), value: b64(value) })
    },
    async leader(name) {
      try {
        return keyValue((await call('/v3/election/leader', { name: b64(name) })).kv)
      } catch (err) {
        // concurrency.ErrElectionNoLeader crosses the gateway as a gRPC Unknown with this text
        if (String(err).includes('election: no leader')) return undefined
        throw err
      }
    },
    async resign(leader) {
      await call('/v3/election/resign', { leader: leaderKey(leader) })
    },
    async grant(ttl) {
      return int64((await call('/v3/lease/grant', { TTL: String(ttl) })).ID)
    },
    async revoke(lease) {
      await call('/v3/lease/revoke', { ID: String(lease) })
    },
    async timeToLive(lease) {
      const res = await call('/v3/lease/timetolive', { ID: String(lease) })
      return { ttl: Number(int64(res.TTL)), grantedTtl: Number(int64(res.grantedTTL)) }
    },
    async get(key) {
      const res = await call('/v3/kv/range', { key: b64(key) })
      return keyValue((res.kvs as unknown[] | undefined)?.[0])
    },
    async putIfOwner(lockKey, token, key, value) {
      const res = await call('/v3/kv/txn', {
        compare: [{ key: b64(lockKey), target: 'CREATE', result: 'EQUAL', create_revision: String(token) }],
        success: [{ request_put: { key: b64(key), value: b64(value) } }],
      })
      return res.succeeded === true
    },
  }
  return gateway
}

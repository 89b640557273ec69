import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { type EtcdAuthAdmin, enableAuth, makeAuthAdmin } from './auth.js'
import { etcdBinary } from './binaries.js'
import { makeCertificates, type TestCertificates } from './certs.js'
import { type EtcdctlAccess, etcdctl, spawnEtcdctl } from './etcdctl.js'

export interface StartEtcdOptions {
  /** Number of members: 1, or 3 for a cluster on loopback. @default 1 */
  members?: 1 | 3
  /** How long to wait for the cluster to answer health checks. @default 20_000 */
  startTimeoutMs?: number
  /**
   * Serve clients over TLS with certificates made for this etcd (a CA of its own, `cluster.tls`);
   * `'mutual'` also demands a client certificate signed by that CA (`--client-cert-auth`). @default false
   */
  tls?: boolean | 'mutual'
  /**
   * Enable etcd's authentication: a `root` user with a random password is made and `auth enable` run;
   * `cluster.auth` then adds users and roles, grants and revokes, and changes passwords. @default false
   */
  auth?: boolean
  /** etcd's `--auth-token-ttl`: seconds an idle simple token lives. @default 300 (etcd's default) */
  authTokenTtl?: number
  /** More of etcd's own flags for every member, e.g. `['--max-txn-ops=8']` (a limit an operator lowered). */
  flags?: readonly string[]
}

/** One etcd process, its ports and data dir; the controls act on this member only. */
export interface EtcdMember {
  readonly name: string
  /** `127.0.0.1:port`, the client endpoint. */
  readonly endpoint: string
  readonly clientUrl: string
  readonly peerUrl: string
  readonly dataDir: string
  /** Whether the process is running (it may be paused). */
  readonly running: boolean
  /** The pid of the running process, or undefined. */
  readonly pid: number | undefined
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<void>
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>
  /** Start again on the same ports with the same data dir (stops it first if running). */
  restart(): Promise<void>
  /** SIGSTOP: the process stays up but answers nothing. */
  pause(): void
  /** SIGCONT. */
  resume(): void
}

/** A throwaway etcd (one member or a cluster) on free loopback ports with temporary data dirs. */
export interface EtcdCluster extends AsyncDisposable {
  /** Client endpoints (`127.0.0.1:port`) of every member. */
  readonly endpoints: string[]
  readonly members: EtcdMember[]
  /** The member that currently leads (asks each running member). */
  leader(): Promise<EtcdMember>
  /** Stops every member (SIGTERM). */
  stop(): Promise<void>
  /** SIGKILL to every member. */
  kill(): Promise<void>
  /** Restarts every member on the same ports and data dirs and waits until healthy. */
  restart(): Promise<void>
  pause(): void
  resume(): void
  /** Stops every member, deletes the data and starts an empty cluster on the same ports. */
  wipe(): Promise<void>
  /** Compacts the key space at the current revision (or `revision`); resolves to the revision compacted at. */
  compact(revision?: number): Promise<number>
  /** The current revision of the key space. */
  revision(): Promise<number>
  /** TLS material of a cluster started with `tls` (undefined otherwise). */
  readonly tls: TestCertificates | undefined
  /** User and role administration of a cluster started with `auth` (undefined otherwise). */
  readonly auth: EtcdAuthAdmin | undefined
  /** How etcdctl reaches this cluster (TLS files; `root` when auth is on). */
  readonly access: EtcdctlAccess
  /** Runs etcdctl against this cluster (as `root`, with the client certificate, when secured). */
  etcdctl(args: readonly string[], input?: string): Promise<string>
  /** Starts a long-running etcdctl (`lock`, `elect`, `watch`) against this cluster, secured like `etcdctl()`. */
  spawnEtcdctl(args: readonly string[], access?: EtcdctlAccess): ReturnType<typeof spawnEtcdctl>
  /** Waits until every running member reports healthy. */
  waitHealthy(timeoutMs?: number): Promise<void>
  /** Stops every member and removes the data dirs. Idempotent. */
  close(): Promise<void>
}

/** `n` distinct free loopback ports: all held open at once while they are read, so none repeats. */
async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer().listen(0, '127.0.0.1'))
  await Promise.all(servers.map((server) => once(server, 'listening')))
  const ports = servers.map((server) => {
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('could not allocate a loopback port')
    return address.port
  })
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/** etcd reads ETCD_* variables as flags: start it without ours (ETCD_ENDPOINTS, ETCD_BIN, a user's own). */
function etcdEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ETCD_')))
}

/** How the test harness itself reaches etcd's HTTP gateway: TLS material and an auth token source. */
export interface Gateway {
  certs: TestCertificates | undefined
  mutual: boolean
  /** Resolves a token for `Authorization` (auth on), else undefined. */
  token?: (clientUrl: string) => Promise<string | undefined>
}

/**
 * A JSON request to etcd's gateway over http or https (fetch cannot take a CA of its own). `timeoutMs` 0
 * waits for ever (a server-side Lock or Campaign answers only once it is held); `signal` aborts the request,
 * which cancels the call on etcd's side.
 */
export function gatewayJson(
  gw: Gateway,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  timeoutMs = 2_000,
  signal?: AbortSignal,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const https = url.startsWith('https:')
  const request = https ? httpsRequest : httpRequest
  const tls =
    https && gw.certs
      ? {
          ca: gw.certs.ca,
          ...(gw.mutual ? { cert: gw.certs.anonymousClient.cert, key: gw.certs.anonymousClient.key } : {}),
        }
      : {}
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        timeout: timeoutMs,
        ...(signal ? { signal } : {}),
        ...tls,
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> })
          } catch (err) {
            reject(new Error(`${url}: not JSON: ${text.slice(0, 200)}`, { cause: err }))
          }
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

async function postJson(gw: Gateway, url: string, body: unknown): Promise<Record<string, unknown>> {
  const origin = new URL(url).origin
  const token = await gw.token?.(origin)
  const { status, json } = await gatewayJson(gw, url, body, token ? { authorization: token } : {})
  if (status < 200 || status >= 300) throw new Error(`${url}: HTTP ${status} ${JSON.stringify(json)}`)
  return json
}

class Member implements EtcdMember {
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  #log: string[] = []
  dataDir: string

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    dataDir: string,
    private readonly cluster: () => { initialCluster: string; token: string },
    private readonly gw: Gateway = { certs: undefined, mutual: false },
    private readonly extraFlags: readonly string[] = [],
  ) {
    this.dataDir = dataDir
  }

  get endpoint() {
    return `127.0.0.1:${this.clientPort}`
  }
  get clientUrl() {
    return `${this.gw.certs ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`
  }
  get peerUrl() {
    return `http://127.0.0.1:${this.peerPort}`
  }
  get running() {
    return this.#child !== undefined
  }
  get pid() {
    return this.#child?.pid
  }
  get recentLog() {
    return this.#log.join('')
  }

  start() {
    if (this.#child) return
    const { initialCluster, token } = this.cluster()
    const child = spawn(
      etcdBinary(),
      [
        `--name=${this.name}`,
        `--data-dir=${this.dataDir}`,
        `--listen-client-urls=${this.clientUrl}`,
        `--advertise-client-urls=${this.clientUrl}`,
        `--listen-peer-urls=${this.peerUrl}`,
        `--initial-advertise-peer-urls=${this.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        `--initial-cluster-token=${token}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
        '--enable-v2=false',
        ...this.extraFlags,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: etcdEnv() },
    )
    this.#child = child
    this.#log = []
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      this.#log.push(chunk)
      if (this.#log.length > 40) this.#log.shift()
    })
    this.#exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        if (this.#child === child) this.#child = undefined
        resolve()
      })
    })
    child.once('error', () => {
      if (this.#child === child) this.#child = undefined
    })
  }

  async #signal(sig: NodeJS.Signals) {
    const child = this.#child
    if (!child) return
    // A stopped process ignores SIGTERM until it is continued.
    child.kill('SIGCONT')
    child.kill(sig)
    await this.#exited
  }

  stop() {
    return this.#signal('SIGTERM')
  }
  kill() {
    return this.#signal('SIGKILL')
  }
  pause() {
    this.#child?.kill('SIGSTOP')
  }
  resume() {
    this.#child?.kill('SIGCONT')
  }

  async restart() {
    await this.stop()
    this.start()
    await this.waitHealthy(20_000)
  }

  async healthy(): Promise<boolean> {
    try {
      const { json } = await gatewayJson(this.gw, `${this.clientUrl}/health`, undefined, {}, 1_000)
      return json.health === 'true'
    } catch {
      return false
    }
  }

  async waitHealthy(timeoutMs: number) {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (!this.#child)
        throw new Error(
          `etcd member ${this.name} exited during start-up; its log ends with:\n${this.recentLog}`,
        )
      if (await this.healthy()) return
      await sleep(50)
    }
    throw new Error(
      `etcd member ${this.name} (${this.clientUrl}) not healthy after ${timeoutMs} ms; its log ends with:\n${this.recentLog}`,
    )
  }
}

/**
 * Starts a throwaway etcd on free loopback ports with temporary data dirs and waits until it is healthy.
 * Needs the `etcd` binary (ETCD_BIN or PATH) and, for `etcdctl()`, `etcdctl`.
 */
export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const count = options.members ?? 1
  if (count !== 1 && count !== 3) throw new RangeError(`members must be 1 or 3, got ${String(count)}`)
  if (options.flags !== undefined && !Array.isArray(options.flags))
    throw new RangeError(`flags must be an array of etcd flags, got ${JSON.stringify(options.flags)}`)
  for (const flag of options.flags ?? [])
    if (typeof flag !== 'string' || !flag.startsWith('--'))
      throw new RangeError(`flags must be etcd flags ("--name=value"), got ${JSON.stringify(flag)}`)
  const startTimeoutMs = options.startTimeoutMs ?? 20_000
  const ttl = options.authTokenTtl
  if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 1))
    throw new RangeError(`authTokenTtl must be whole seconds >= 1, got ${String(ttl)}`)
  etcdBinary() // fail early, with the install hint, when etcd is missing
  // A free port can be taken by another process between our check and etcd's bind: try new ports then.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCluster(count, startTimeoutMs, options)
    } catch (err) {
      if (attempt >= 3 || !/address already in use|duplicate url/.test((err as Error).message)) throw err
    }
  }
}

async function startCluster(
  count: 1 | 3,
  startTimeoutMs: number,
  options: StartEtcdOptions,
): Promise<EtcdCluster> {
  const root = await mkdtemp(join(tmpdir(), 'etcdkit-etcd-'))
  let token = `etcdkit-${process.pid}-${Date.now()}`
  const mutual = options.tls === 'mutual'
  let certs: TestCertificates | undefined
  if (options.tls) {
    const dir = join(root, 'certs')
    await mkdir(dir)
    certs = await makeCertificates(dir).catch(async (err: unknown) => {
      await rm(root, { recursive: true, force: true })
      throw err
    })
  }
  const rootPassword = options.auth ? randomBytes(12).toString('hex') : undefined
  const access: EtcdctlAccess = {
    ...(certs ? { caFile: certs.caFile } : {}),
    ...(certs && mutual ? { certFile: certs.client.certFile, keyFile: certs.client.keyFile } : {}),
    ...(rootPassword ? { user: `root:${rootPassword}` } : {}),
  }
  const gw: Gateway = { certs, mutual }
  if (rootPassword) {
    // a fresh token per call: the harness's calls are rare and tokens may be set to expire in seconds
    gw.token = async (origin) => {
      const { json } = await gatewayJson(gw, `${origin}/v3/auth/authenticate`, {
        name: 'root',
        password: rootPassword,
      })
      return typeof json.token === 'string' ? json.token : undefined
    }
  }
  const flags: string[] = []
  if (certs) flags.push(`--cert-file=${certs.server.certFile}`, `--key-file=${certs.server.keyFile}`)
  if (certs && mutual) flags.push(`--trusted-ca-file=${certs.caFile}`, '--client-cert-auth')
  if (options.authTokenTtl !== undefined) flags.push(`--auth-token-ttl=${options.authTokenTtl}`)
  flags.push(...(options.flags ?? []))
  const members: Member[] = []
  const initialCluster = () => members.map((m) => `${m.name}=${m.peerUrl}`).join(',')
  const ports = await freePorts(2 * count)
  for (let i = 0; i < count; i++) {
    const name = `m${i}`
    members.push(
      new Member(
        name,
        ports[2 * i]!,
        ports[2 * i + 1]!,
        join(root, name),
        () => ({ initialCluster: initialCluster(), token }),
        gw,
        flags,
      ),
    )
  }

  const waitHealthy = async (timeoutMs = startTimeoutMs) => {
    await Promise.all(members.filter((m) => m.running).map((m) => m.waitHealthy(timeoutMs)))
  }
  const endpoints = members.map((m) => m.endpoint)
  let authOn = false
  // a secured etcd checks a password (bcrypt) per etcdctl call: on a busy machine 5 s is not always enough
  const timeoutFlags = rootPassword ? ['--command-timeout=20s', '--dial-timeout=20s'] : []
  const run = (args: readonly string[], input?: string) =>
    etcdctl(endpoints, [...timeoutFlags, ...args], {
      access,
      timeoutMs: 30_000,
      ...(input === undefined ? {} : { input }),
    })
  const startAll = async () => {
    for (const m of members) m.start()
    await waitHealthy()
    // a new (or wiped) data dir has auth off: turn it on, with root's password
    if (rootPassword && !authOn) {
      await enableAuth(endpoints, access, rootPassword)
      authOn = true
    }
  }
  const anyRunning = () => {
    const m = members.find((x) => x.running)
    if (!m) throw new Error('no etcd member is running')
    return m
  }
  const revision = async () => {
    const res = await postJson(gw, `${anyRunning().clientUrl}/v3/kv/range`, {
      key: Buffer.from('\0').toString('base64'),
    })
    return Number((res.header as { revision: string }).revision)
  }
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await Promise.all(members.map((m) => m.kill()))
    await rm(root, { recursive: true, force: true })
  }

  try {
    await startAll()
  } catch (err) {
    await close()
    throw err
  }

  const cluster: EtcdCluster = {
    endpoints,
    members,
    async leader() {
      for (const m of members.filter((x) => x.running)) {
        try {
          const status = await postJson(gw, `${m.clientUrl}/v3/maintenance/status`, {})
          const header = status.header as { member_id: string }
          if (status.leader === header.member_id) return m
        } catch {
          // not answering (paused or electing): ask the next one
        }
      }
      throw new Error('no etcd member reports itself leader')
    },
    async stop() {
      await Promise.all(members.map((m) => m.stop()))
    },
    async kill() {
      await Promise.all(members.map((m) => m.kill()))
    },
    async restart() {
      await Promise.all(members.map((m) => m.stop()))
      await startAll()
    },
    pause() {
      for (const m of members) m.pause()
    },
    resume() {
      for (const m of members) m.resume()
    },
    async wipe() {
      await Promise.all(members.map((m) => m.kill()))
      await Promise.all(members.map((m) => rm(m.dataDir, { recursive: true, force: true })))
      authOn = false
      token = `etcdkit-${process.pid}-${Date.now()}`
      await startAll()
    },
    async compact(rev?: number) {
      const at = rev ?? (await revision())
      await postJson(gw, `${anyRunning().clientUrl}/v3/kv/compaction`, {
        revision: String(at),
        physical: true,
      })
      return at
    },
    revision,
    tls: certs,
    auth: rootPassword ? makeAuthAdmin(run, rootPassword) : undefined,
    access,
    etcdctl: run,
    spawnEtcdctl(args, as = access) {
      return spawnEtcdctl(endpoints, args, as)
    },
    waitHealthy,
    close,
    [Symbol.asyncDispose]: close,
  }
  return cluster
}

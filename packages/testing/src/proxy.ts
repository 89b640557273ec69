import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'

/**
 * What a {@link FaultProxy} does with traffic:
 * - `pass`: forwards bytes both ways (after the configured latency);
 * - `stall`: holds every byte, both ways, and sends them in order when the mode changes (a paused VM, a
 *   long GC pause, a congested link); sockets stay open, new connections are accepted and held too;
 * - `blackhole`: drops every byte, both ways, while keeping sockets open (a silent partition: nothing
 *   answers, nothing is refused); new connections are accepted and dropped the same way. A connection
 *   that lost bytes has a gap in its byte stream, so it is reset when the blackhole ends (as a real
 *   connection times out after a long partition);
 * - `blackhole-new`: connections open before the change keep working; new ones are accepted but never
 *   forwarded (a load balancer that lost its backend). They are reset when the mode changes.
 */
export type ProxyMode = 'pass' | 'stall' | 'blackhole' | 'blackhole-new'

/** A TCP proxy on a free loopback port in front of one address, with faults switched on and off at will. */
export interface FaultProxy extends AsyncDisposable {
  /** `127.0.0.1:port`: give this to a client instead of `target`. */
  readonly endpoint: string
  /** The address the proxy forwards to (`host:port`). */
  readonly target: string
  readonly mode: ProxyMode
  /** Milliseconds added to each direction (see {@link FaultProxy.latency}). */
  readonly latencyMs: number
  /** Client connections currently open through the proxy. */
  readonly connections: number
  /** Client connections accepted over the proxy's life. */
  readonly accepted: number
  /** Bytes forwarded to the target over the proxy's life (which member a client talks to, and when). */
  readonly bytesToTarget: number
  /** Bytes forwarded from the target to clients over the proxy's life. */
  readonly bytesFromTarget: number
  /** Forward traffic again; bytes held by `stall` are sent first, in order. */
  pass(): void
  /** Hold every byte until the next mode change. */
  stall(): void
  /** Drop every byte, keeping sockets open. */
  blackhole(): void
  /** Accept new connections but never forward them; open ones keep working. */
  blackholeNew(): void
  /** Sets the mode by name. */
  setMode(mode: ProxyMode): void
  /** Destroys every open connection now (an RST to the client and to the target); the mode is unchanged. */
  reset(): void
  /** Adds `ms` to each direction of every connection from now on (0 removes it); byte order is kept. */
  latency(ms: number): void
  /** Stops listening and destroys every connection. Idempotent. */
  close(): Promise<void>
}

export interface FaultProxyOptions {
  /** The mode to start in. @default "pass" */
  mode?: ProxyMode
  /** Latency added to each direction, in ms. @default 0 */
  latencyMs?: number
}

/** One direction of one connection: where its bytes go, and what is held or due. */
class Pipe {
  /** Bytes held by `stall`, in order. */
  held: Buffer[] = []
  /** Bytes waiting out the latency, each with the time it is due. */
  readonly due: { at: number; chunk: Buffer }[] = []
  timer: NodeJS.Timeout | undefined
  /** Bytes were dropped: the stream has a gap. */
  gap = false

  constructor(
    readonly to: Socket,
    private readonly count: (bytes: number) => void,
  ) {}

  send(chunk: Buffer, latencyMs: number) {
    if (latencyMs <= 0 && this.due.length === 0) {
      this.#write(chunk)
      return
    }
    // never before what is already queued: a latency lowered mid-stream must not reorder bytes
    const last = this.due.at(-1)?.at ?? 0
    this.due.push({ at: Math.max(Date.now() + latencyMs, last), chunk })
    this.#schedule()
  }

  #schedule() {
    if (this.timer || this.due.length === 0) return
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        const now = Date.now()
        while (this.due.length > 0 && this.due[0]!.at <= now) this.#write(this.due.shift()!.chunk)
        this.#schedule()
      },
      Math.max(0, this.due[0]!.at - Date.now()),
    )
  }

  #write(chunk: Buffer) {
    this.count(chunk.length)
    this.to.write(chunk)
  }

  stop() {
    clearTimeout(this.timer)
    this.timer = undefined
    this.due.length = 0
    this.held = []
  }
}

class Connection {
  readonly up: Pipe
  readonly down: Pipe
  /** Accepted in `blackhole-new`: never forwarded. */
  readonly dead: boolean
  constructor(
    readonly client: Socket,
    readonly server: Socket | undefined,
    dead: boolean,
    counters: { up(bytes: number): void; down(bytes: number): void },
  ) {
    this.dead = dead
    // a dead connection's pipes point back at nothing useful; its bytes are always dropped
    this.up = new Pipe(server ?? client, counters.up)
    this.down = new Pipe(client, counters.down)
  }

  destroy() {
    this.up.stop()
    this.down.stop()
    for (const s of [this.client, this.server]) {
      if (!s || s.destroyed) continue
      // an RST, as a real reset: the peer sees ECONNRESET, not an orderly FIN
      if (typeof s.resetAndDestroy === 'function' && s.readyState !== 'opening') s.resetAndDestroy()
      else s.destroy()
    }
  }
}

class TcpFaultProxy implements FaultProxy {
  readonly #server: Server
  readonly #targetHost: string
  readonly #targetPort: number
  readonly #connections = new Set<Connection>()
  #mode: ProxyMode
  #latencyMs: number
  #closing: Promise<void> | undefined
  accepted = 0
  bytesToTarget = 0
  bytesFromTarget = 0
  endpoint = ''
  readonly #counters = {
    up: (bytes: number) => {
      this.bytesToTarget += bytes
    },
    down: (bytes: number) => {
      this.bytesFromTarget += bytes
    },
  }

  constructor(
    readonly target: string,
    options: FaultProxyOptions,
  ) {
    const m = /^(?:https?:\/\/)?\[?([^\]]*?)\]?:(\d+)\/?$/.exec(target)
    if (!m) throw new RangeError(`startProxy: target must be "host:port", got ${JSON.stringify(target)}`)
    this.#targetHost = m[1]!
    this.#targetPort = Number(m[2])
    this.#mode = checkMode(options.mode ?? 'pass')
    this.#latencyMs = checkLatency(options.latencyMs ?? 0)
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
  }

  async listen() {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.endpoint = `127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  get mode() {
    return this.#mode
  }
  get latencyMs() {
    return this.#latencyMs
  }
  get connections() {
    return this.#connections.size
  }

  #accept(client: Socket) {
    this.accepted++
    client.on('error', () => {})
    if (this.#closing) {
      client.destroy()
      return
    }
    if (this.#mode === 'blackhole-new') {
      const conn = new Connection(client, undefined, true, this.#counters)
      this.#connections.add(conn)
      client.on('data', () => {})
      client.on('close', () => this.#connections.delete(conn))
      return
    }
    const server = connect({ host: this.#targetHost, port: this.#targetPort, noDelay: true })
    server.on('error', () => {})
    const conn = new Connection(client, server, false, this.#counters)
    this.#connections.add(conn)
    client.on('data', (chunk: Buffer) => this.#forward(conn.up, chunk))
    server.on('data', (chunk: Buffer) => this.#forward(conn.down, chunk))
    const end = () => {
      if (!this.#connections.delete(conn)) return
      conn.destroy()
    }
    client.on('close', end)
    server.on('close', end)
  }

  #forward(pipe: Pipe, chunk: Buffer) {
    switch (this.#mode) {
      case 'stall':
        pipe.held.push(chunk)
        return
      case 'blackhole':
        pipe.gap = true
        return
      default:
        pipe.send(chunk, this.#latencyMs)
    }
  }

  setMode(mode: ProxyMode) {
    checkMode(mode)
    if (this.#closing) return
    this.#mode = mode
    for (const conn of [...this.#connections]) {
      if (mode === 'blackhole') continue
      // a connection with a gap in its bytes, or one never forwarded, cannot carry on: reset it
      if ((conn.dead && mode !== 'blackhole-new') || conn.up.gap || conn.down.gap) {
        this.#connections.delete(conn)
        conn.destroy()
        continue
      }
      if (mode === 'stall') continue
      for (const pipe of [conn.up, conn.down]) {
        const held = pipe.held
        pipe.held = []
        for (const chunk of held) pipe.send(chunk, this.#latencyMs)
      }
    }
  }

  pass() {
    this.setMode('pass')
  }
  stall() {
    this.setMode('stall')
  }
  blackhole() {
    this.setMode('blackhole')
  }
  blackholeNew() {
    this.setMode('blackhole-new')
  }

  reset() {
    for (const conn of this.#connections) conn.destroy()
    this.#connections.clear()
  }

  latency(ms: number) {
    this.#latencyMs = checkLatency(ms)
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise((resolve) => this.#server.close(resolve))
      this.reset()
      await closed
    })()
    return this.#closing
  }

  [Symbol.asyncDispose]() {
    return this.close()
  }
}

function checkMode(mode: ProxyMode): ProxyMode {
  if (mode !== 'pass' && mode !== 'stall' && mode !== 'blackhole' && mode !== 'blackhole-new')
    throw new RangeError(
      `proxy mode must be pass, stall, blackhole or blackhole-new, got ${JSON.stringify(mode)}`,
    )
  return mode
}

function checkLatency(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0 || ms > 2 ** 31 - 1)
    throw new RangeError(`proxy latency must be a number of ms in [0, 2^31 - 1], got ${String(ms)}`)
  return ms
}

/**
 * Starts a TCP proxy on a free loopback port in front of `target` (`host:port`, e.g. an etcd member's
 * endpoint). Point a client at `proxy.endpoint`, then switch faults on and off:
 *
 * ```ts
 * await using proxy = await startProxy(etcd.endpoints[0])
 * const kit = new EtcdKit({ endpoints: [proxy.endpoint] })
 * proxy.blackhole() // a silent partition
 * proxy.pass()
 * ```
 */
export async function startProxy(target: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const proxy = new TcpFaultProxy(target, options)
  await proxy.listen()
  return proxy
}

/** One proxy per member of a cluster: a client given `endpoints` reaches member i through `proxies[i]`. */
export interface ProxiedCluster extends AsyncDisposable {
  /** The proxies' endpoints, in the order of the targets. */
  readonly endpoints: string[]
  readonly proxies: FaultProxy[]
  /** The proxy in front of `target` (a member's own endpoint). */
  proxyOf(target: string): FaultProxy
  /** Closes every proxy. Idempotent. */
  close(): Promise<void>
}

/**
 * A proxy in front of each endpoint of `cluster` (an `EtcdCluster`, or a list of `host:port`), so each
 * member can be partitioned, stalled or slowed on its own.
 */
export async function proxyCluster(
  cluster: { readonly endpoints: readonly string[] } | readonly string[],
  options: FaultProxyOptions = {},
): Promise<ProxiedCluster> {
  const targets = 'endpoints' in cluster ? cluster.endpoints : (cluster as readonly string[])
  const proxies: FaultProxy[] = []
  try {
    for (const target of targets) proxies.push(await startProxy(target, options))
  } catch (err) {
    await Promise.all(proxies.map((p) => p.close()))
    throw err
  }
  const close = async () => {
    await Promise.all(proxies.map((p) => p.close()))
  }
  return {
    endpoints: proxies.map((p) => p.endpoint),
    proxies,
    proxyOf(target: string) {
      const proxy = proxies.find((p) => p.target === target)
      if (!proxy) throw new RangeError(`no proxy in front of ${JSON.stringify(target)}`)
      return proxy
    },
    close,
    [Symbol.asyncDispose]: close,
  }
}

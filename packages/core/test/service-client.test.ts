import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { heapGrowth, uniquePrefix } from '@etcdkit/testing'
import test from 'ava'
import {
  AllEndpointsOpenError,
  type BreakerEvent,
  ClosedError,
  EtcdKit,
  InvalidArgumentError,
  NoInstancesError,
  RetriesExhaustedError,
  type ServiceClient,
  silentLogger,
} from '../src/index.js'
import { etcd, eventually, kit } from './helpers.js'

test.after.always(async () => (await etcd()).close())

const root = fileURLToPath(new URL('../../../', import.meta.url))
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

interface TestServer {
  address: string
  server: Server
  hits: number
  /** Open connections to it right now. */
  connections: number
  close(): Promise<void>
}

/** A real HTTP server on 127.0.0.1, answering with `name` (or whatever `handler` does). */
async function httpServer(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<TestServer> {
  const s: TestServer = {
    address: '',
    hits: 0,
    connections: 0,
    server: createServer((req, res) => {
      s.hits++
      if (handler) handler(req, res)
      else res.end(name)
    }),
    close: async () => {
      s.server.closeAllConnections()
      await new Promise((r) => s.server.close(r))
    },
  }
  s.server.on('connection', (socket) => {
    s.connections++
    socket.on('close', () => s.connections--)
  })
  s.server.listen(0, '127.0.0.1')
  await once(s.server, 'listening')
  s.address = `127.0.0.1:${(s.server.address() as AddressInfo).port}`
  return s
}

/** An address where nothing listens. */
async function deadAddress(): Promise<string> {
  const s = await httpServer('dead')
  await s.close()
  return s.address
}

function node(script: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import=tsx', '--conditions=etcdkit-source', fixture(script)], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
}

/** Resolves with the first stdout line of `child` starting with `prefix` (the rest of it). */
function line(child: ChildProcess, prefix: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" line within ${timeoutMs} ms`)), timeoutMs)
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString()
      for (const l of buffer.split('\n')) {
        if (l.startsWith(prefix)) {
          clearTimeout(timer)
          child.stdout!.off('data', onData)
          resolve(l.slice(prefix.length).trim())
        }
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`exited with ${code} before "${prefix}"`)))
  })
}

/** How many of 10,000 picks went to each of `servers`, in their order. */
function pickShares(client: ServiceClient, servers: readonly TestServer[]): Array<number | undefined> {
  const counts = new Map<string, number>()
  for (let i = 0; i < 10_000; i++) {
    const { address } = client.pick()
    counts.set(address, (counts.get(address) ?? 0) + 1)
  }
  return servers.map((s) => counts.get(s.address))
}

test('10,000 picks over instances registered in etcd match their weights exactly', async (t) => {
  await using k = await kit()
  const servers = await Promise.all(['a', 'b', 'c'].map((n) => httpServer(n)))
  t.teardown(() => Promise.all(servers.map((s) => s.close())))
  const weights = [1, 4, 5]
  await Promise.all(
    servers.map((s, i) =>
      k.register({ service: 'weighted', address: s.address, metadata: { weight: weights[i]! } }),
    ),
  )
  const client = k.service('weighted')
  await client.ready
  await eventually(() => client.instances.length === 3, '3 instances')
  t.deepEqual(pickShares(client, servers), [1_000, 4_000, 5_000])

  // pick() allocates nothing: 200k picks grow the heap by less than 64 KB
  let sink = 0
  const picks = (n: number) => {
    for (let i = 0; i < n; i++) sink += client.pick().weight
  }
  for (let i = 0; i < 5; i++) picks(50_000) // warm up (JIT)
  const grew = heapGrowth(() => picks(200_000))
  t.true(grew !== undefined && grew < 65_536, `heap growth ${grew}`)
  t.true(sink > 0)
})

test('equal weights spread picks and requests evenly', async (t) => {
  await using k = await kit()
  const servers = await Promise.all(['a', 'b', 'c', 'd'].map((n) => httpServer(n)))
  t.teardown(() => Promise.all(servers.map((s) => s.close())))
  await Promise.all(servers.map((s) => k.register({ service: 'even', address: s.address })))
  const client = k.service('even')
  await eventually(() => client.instances.length === 4, '4 instances')
  t.deepEqual(pickShares(client, servers), [2_500, 2_500, 2_500, 2_500])
  for (let i = 0; i < 100; i++) {
    const res = await client.request('/')
    t.is(res.statusCode, 200)
    await res.body.text()
  }
  t.deepEqual(
    servers.map((s) => s.hits),
    [25, 25, 25, 25],
  )
})

test('zone preference: local instances first, all of them when no local one is available', async (t) => {
  await using k = await kit()
  const servers = await Promise.all(['a1', 'a2'].map((n) => httpServer(n)))
  t.teardown(() => Promise.all(servers.map((s) => s.close())))
  const deadB = await deadAddress()
  await k.register({ service: 'zoned', address: servers[0]!.address, metadata: { zone: 'a' } })
  await k.register({ service: 'zoned', address: servers[1]!.address, metadata: { zone: 'a' } })
  await k.register({ service: 'zoned', address: deadB, metadata: { zone: 'b' } })
  const client = k.service('zoned', { zone: 'b' })
  await eventually(() => client.instances.length === 3, '3 instances')
  for (let i = 0; i < 10; i++) t.is(client.pick().address, deadB)
  // the local one refuses connections: the request goes on to zone a, and b's breaker opens
  const res = await client.request('/')
  t.is(res.statusCode, 200)
  await res.body.dump()
  t.is(client.endpoints().find((e) => e.address === deadB)?.state, 'open')
  const picked = new Set(Array.from({ length: 10 }, () => client.pick().address))
  t.deepEqual([...picked].sort(), servers.map((s) => s.address).sort())
})

/**
 * The error `promise` rejects with, provided it settles "at once": before the event loop's next turn (no
 * I/O, no timer in between). A machine-load-proof way to say "within milliseconds".
 */
async function beforeAnyIo(promise: Promise<unknown>): Promise<NoInstancesError | AllEndpointsOpenError> {
  const late = Symbol('late')
  const outcome = await Promise.race([
    promise.then(
      () => new Error('resolved'),
      (err: unknown) => err,
    ),
    new Promise((resolve) => setImmediate(() => resolve(late))),
  ])
  if (outcome === late) throw new Error('did not fail before the next turn of the event loop')
  return outcome as NoInstancesError
}

test('no instances, and all breakers open: a clear error at once, naming the service', async (t) => {
  await using k = await kit()
  const nobody = k.service('nobody')
  await nobody.ready
  const none = await beforeAnyIo(nobody.request('/'))
  t.true(none instanceof NoInstancesError)
  t.is(none.code, 'ETCDKIT_NO_INSTANCES')
  t.regex(none.message, /"nobody"/)
  t.throws(() => nobody.pick(), { instanceOf: NoInstancesError })

  const dead = await deadAddress()
  await k.register({ service: 'down', address: dead })
  const down = k.service('down', { breaker: { resetTimeout: 60_000 } })
  await eventually(() => down.instances.length === 1, 'the instance')
  // its connection is refused and there is no other endpoint to retry on
  const exhausted = await t.throwsAsync(down.request('/'), { instanceOf: RetriesExhaustedError })
  t.is(exhausted.code, 'ETCDKIT_RETRIES_EXHAUSTED')
  t.deepEqual(exhausted.tried, [dead])
  t.is((exhausted.cause as { code?: string }).code, 'ECONNREFUSED')
  const open = await beforeAnyIo(down.request('/'))
  t.true(open instanceof AllEndpointsOpenError)
  t.is(open.code, 'ETCDKIT_ALL_ENDPOINTS_OPEN')
  t.regex(open.message, /"down"/)
  t.throws(() => down.pick(), { instanceOf: AllEndpointsOpenError })
})

test('an instance answering 500s trips its breaker, is skipped, and is probed again half-open', async (t) => {
  await using k = await kit()
  let failing = true
  const good = await httpServer('good')
  const bad = await httpServer('bad', (_req, res) => {
    res.statusCode = failing ? 500 : 200
    res.end(failing ? 'boom' : 'bad-recovered')
  })
  t.teardown(() => Promise.all([good.close(), bad.close()]))
  await k.register({ service: 'flaky', address: good.address })
  await k.register({ service: 'flaky', address: bad.address })
  const client = k.service('flaky', { breaker: { resetTimeout: 600, volumeThreshold: 3 } })
  const events: BreakerEvent[] = []
  let hitsAtOpen = -1
  client.on('breaker', (e) => {
    events.push(e)
    if (e.state === 'open' && hitsAtOpen < 0) hitsAtOpen = bad.hits
  })
  await eventually(() => client.instances.length === 2, '2 instances')

  const statuses: number[] = []
  for (let i = 0; i < 20; i++) {
    const res = await client.request('/')
    statuses.push(res.statusCode)
    await res.body.dump() // a 500 not retried is returned as it is
  }
  const halfOpens = () => events.filter((e) => e.state === 'halfOpen').length
  t.deepEqual(events[0], { service: 'flaky', address: bad.address, state: 'open' })
  t.is(hitsAtOpen, 3) // volumeThreshold: the third failure opened it
  // while open it is skipped: it was reached again only by half-open probes, one each (if any yet)
  t.true(bad.hits - 3 <= halfOpens())
  t.is(statuses.filter((s) => s === 500).length, bad.hits)
  const stats = client.endpoints().find((e) => e.address === bad.address)!
  t.true(stats.failures >= 3)

  /** Sends requests until the bad endpoint has been reached once more (its half-open probe). */
  const untilProbed = async (options = {}) => {
    const before = bad.hits
    const seen: Array<[number, string]> = []
    for (let i = 0; i < 50 && bad.hits === before; i++) {
      const res = await client.request('/', options)
      seen.push([res.statusCode, await res.body.text()])
    }
    t.is(bad.hits, before + 1, 'exactly one probe')
    return seen
  }

  // half-open lets one probe through; it fails (its 500 is returned), so the breaker opens again
  let h = halfOpens()
  await eventually(() => halfOpens() > h, 'half-open')
  let seen = await untilProbed()
  t.deepEqual(seen.at(-1), [500, 'boom'])
  t.is(events.at(-1)?.state, 'open')

  // asked to retry: the idempotent request whose probe met a 500 goes on to the good one
  h = halfOpens()
  await eventually(() => halfOpens() > h, 'half-open again')
  seen = await untilProbed({ retryIdempotent: true })
  t.true(seen.every(([status, body]) => status === 200 && body === 'good'))

  // recovered: the next probe succeeds, the breaker closes, and it is back in rotation
  failing = false
  h = halfOpens()
  await eventually(() => halfOpens() > h, 'half-open once more')
  seen = await untilProbed()
  t.deepEqual(seen.at(-1), [200, 'bad-recovered'])
  t.is(events.at(-1)?.state, 'closed')
  const bodies = new Set<string>()
  for (let i = 0; i < 4; i++) bodies.add(await (await client.request('/')).body.text())
  t.deepEqual([...bodies].sort(), ['bad-recovered', 'good'])
})

test('SIGKILL one of 3 instances under load: zero failed requests; it leaves, and rejoins when back', async (t) => {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('kill')
  await using k = new EtcdKit({ endpoints, namespace, logger: silentLogger })
  const children = new Set<ChildProcess>()
  t.teardown(() => {
    for (const c of children) c.kill('SIGKILL')
  })
  const start = async (name: string, port = 0) => {
    const child = node('server.ts', {
      ETCD_ENDPOINTS: endpoints.join(','),
      NAMESPACE: namespace,
      SERVICE: 'api',
      NAME: name,
      PORT: String(port),
      TTL: '2',
    })
    children.add(child)
    return { child, address: await line(child, 'ready ') }
  }
  const instances = await Promise.all(['a', 'b', 'c'].map((n) => start(n)))
  const victim = instances[1]!
  const client = k.service('api', { breaker: { resetTimeout: 300 } })
  const events: BreakerEvent[] = []
  client.on('breaker', (e) => events.push(e))
  await eventually(() => client.instances.length === 3, '3 instances')

  const served = new Map<string, number>()
  const failures: unknown[] = []
  let running = true
  const worker = async () => {
    while (running) {
      try {
        const res = await client.request('/')
        const body = await res.body.text()
        if (res.statusCode !== 200) failures.push(new Error(`status ${res.statusCode}`))
        served.set(body, (served.get(body) ?? 0) + 1)
      } catch (err) {
        failures.push(err)
      }
    }
  }
  const workers = Promise.all(Array.from({ length: 4 }, worker))
  await eventually(() => (served.get('b') ?? 0) > 50, 'b serving')

  victim.child.kill('SIGKILL')
  await eventually(
    () => events.some((e) => e.address === victim.address && e.state === 'open'),
    "the victim's breaker opens",
  )
  const leftAt = Date.now()
  await eventually(
    () => !client.instances.some((i) => i.address === victim.address),
    'the victim leaves when its key expires',
  )
  t.log(`left rotation ${Date.now() - leftAt} ms after its breaker opened`)
  t.false(client.endpoints().some((e) => e.address === victim.address))
  const port = Number(victim.address.split(':')[1])
  await start('b2', port)
  await eventually(() => (served.get('b2') ?? 0) > 20, 'the instance back at the same address serves again')
  running = false
  await workers
  t.log(`served ${JSON.stringify(Object.fromEntries(served))}`)
  t.deepEqual(failures, [])
  t.true((served.get('a') ?? 0) > 100 && (served.get('c') ?? 0) > 100)
})

test('many instances coming and going, then kit.close(): pools close with their endpoints; the process exits on its own', async (t) => {
  const { endpoints } = await etcd()
  const servers = await Promise.all(['x', 'y', 'z'].map((n) => httpServer(n)))
  t.teardown(() => Promise.all(servers.map((s) => s.close())))
  const child = node('churn.ts', {
    ETCD_ENDPOINTS: endpoints.join(','),
    NAMESPACE: uniquePrefix('churn'),
    ADDRS: servers.map((s) => s.address).join(','),
    DEAD: await deadAddress(),
    ROUNDS: '15',
  })
  t.teardown(() => child.kill('SIGKILL'))
  const exited = once(child, 'exit')
  const churned = JSON.parse(await line(child, 'churned ', 60_000)) as { requests: number; opened: number }
  t.is(churned.requests, 15 * 4 * 2)
  t.is(churned.opened, 15) // the dead endpoint's breaker, once per round
  // every endpoint is gone: their keep-alive pools were closed (the servers see no connection left)
  await eventually(() => servers.every((s) => s.connections === 0), 'no connections left', 1_000)
  t.true(servers.every((s) => s.hits > 0))
  child.stdin!.write('close\n')
  const closed = JSON.parse(await line(child, 'closed ')) as string[]
  const closedAt = Date.now()
  // stdio pipes and the Immediates of the write in flight are all that is left: no socket, no timer
  t.deepEqual(
    closed.filter((r) => r !== 'PipeWrap' && r !== 'Immediate'),
    [],
    'nothing keeps the event loop alive after kit.close()',
  )
  const [code] = await exited
  t.is(code, 0)
  t.true(Date.now() - closedAt < 3_000)
})

test('kit.service() shares one client per name, checks options, and kit.close() closes it', async (t) => {
  const k = await kit()
  const s = await httpServer('s')
  t.teardown(() => s.close())
  await k.register({ service: 'shared', address: s.address })
  const client = k.service('shared', { retries: 1 })
  t.is(k.service('shared'), client)
  t.is(k.service('shared', { retries: 1 }), client)
  t.throws(() => k.service('shared', { retries: 2 }), { instanceOf: InvalidArgumentError })
  t.throws(() => k.service('bad name'), { instanceOf: InvalidArgumentError })
  t.throws(() => k.service('x', { retries: -1 }), { instanceOf: InvalidArgumentError, message: /retries -1/ })
  t.throws(() => k.service('y', { breaker: { errorThresholdPercentage: 101 } }), {
    instanceOf: InvalidArgumentError,
  })
  // a refused client leaves no view behind, and the name stays free
  t.is(k.service('x'), k.service('x'))
  await eventually(() => client.instances.length === 1, 'the instance')
  await (await client.request('/')).body.dump()
  t.is(s.connections, 1)
  let closeEvents = 0
  client.on('close', () => closeEvents++)
  await k.close()
  t.true(client.closed)
  t.is(closeEvents, 1)
  await t.throwsAsync(client.request('/'), { instanceOf: ClosedError })
  t.throws(() => client.pick(), { instanceOf: ClosedError })
  await eventually(() => s.connections === 0, 'its pool closed')
})

test('retry policy: resets re-sent only for idempotent requests; refused connections for any method', async (t) => {
  await using k = await kit()
  const good = await httpServer('good')
  const reset = await httpServer('reset', (req) => req.socket.destroy())
  t.teardown(() => Promise.all([good.close(), reset.close()]))
  await k.register({ service: 'resets', address: good.address })
  await k.register({ service: 'resets', address: reset.address })
  const client = k.service('resets', { breaker: { volumeThreshold: 1_000 } })
  await eventually(() => client.instances.length === 2, '2 instances')

  // GET: a connection broken before the response is sent again elsewhere
  for (let i = 0; i < 6; i++) t.is(await (await client.request('/')).body.text(), 'good')
  t.true(reset.hits >= 3)
  t.is(good.hits, 6)
  const resetBefore = reset.hits

  // POST: it may have been processed, so it is not re-sent; idempotent: true allows it
  let failed = 0
  for (let i = 0; i < 6; i++) {
    try {
      await (await client.request('/', { method: 'POST', body: 'x' })).body.dump()
    } catch (err) {
      t.is((err as { code?: string }).code, 'ETCDKIT_REQUEST_FAILED')
      t.regex((err as Error).message, /"resets".*127\.0\.0\.1/)
      failed++
    }
  }
  t.true(failed >= 3)
  t.is(reset.hits - resetBefore, failed) // each failed POST reached the resetting endpoint only
  t.is(good.hits, 6 + (6 - failed)) // and was not re-sent to the good one
  const res = await client.request('/', { method: 'POST', body: 'x', idempotent: true })
  t.is(res.statusCode, 200)
  await res.body.dump()

  // a refused connection sent nothing: any method goes on to the next endpoint
  await k.register({ service: 'refused', address: await deadAddress() })
  await k.register({ service: 'refused', address: good.address })
  const other = k.service('refused')
  await eventually(() => other.instances.length === 2, '2 instances')
  for (let i = 0; i < 4; i++) {
    const r = await other.request('/', { method: 'POST', body: 'x' })
    t.is(r.statusCode, 200)
    await r.body.dump()
  }
})

test('concurrent requests: one request never tries the same endpoint twice, however the others pick', async (t) => {
  await using k = await kit()
  // a slow 500 gives the dead endpoint's breaker time to go half-open (1 ms) while a retry is under way,
  // and other requests probe it meanwhile
  const slow = await httpServer('slow', (_req, res) => {
    setTimeout(() => {
      res.statusCode = 500
      res.end('slow')
    }, 20)
  })
  t.teardown(() => slow.close())
  const dead = await deadAddress()
  await k.register({ service: 'once-each', address: dead })
  await k.register({ service: 'once-each', address: slow.address })
  const client = k.service('once-each', {
    retries: 5,
    retryIdempotent: true,
    breaker: { resetTimeout: 1, volumeThreshold: 1_000 },
  })
  await eventually(() => client.instances.length === 2, '2 instances')
  const tried: string[][] = []
  let other = 0
  // enough exhausted requests to have seen half-open probes interleave, however slow the machine
  const until = Date.now() + 15_000
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (tried.length <= 20 && Date.now() < until) {
        try {
          await (await client.request('/')).body.dump()
        } catch (err) {
          if (err instanceof RetriesExhaustedError) tried.push([...err.tried])
          else {
            other++
            t.log(err)
          }
        }
      }
    }),
  )
  t.true(tried.length > 20, `${tried.length} requests exhausted their retries, ${other} other errors`)
  t.deepEqual(
    tried.filter((list) => new Set(list).size !== list.length),
    [],
  )
  t.is(other, 0)
})

test('call(): an own transport through the breakers: failures open one, it is skipped, a half-open success brings it back', async (t) => {
  await using k = await kit()
  const [a, b] = ['10.9.0.1:7000', '10.9.0.2:7000']
  await k.register({ service: 'own', address: a! })
  await k.register({ service: 'own', address: b! })
  const client = k.service('own', { breaker: { volumeThreshold: 3, resetTimeout: 300 } })
  const events: BreakerEvent[] = []
  client.on('breaker', (e) => events.push(e))
  await eventually(() => client.instances.length === 2, '2 instances')

  let aDown = true
  const down = new Error('a is down')
  const fn = (i: { address: string }) => {
    if (i.address === a && aDown) throw down // synchronous throws count too
    return Promise.resolve(i.address)
  }
  const outcomes: string[] = []
  for (let i = 0; i < 20; i++) {
    try {
      outcomes.push(await client.call(fn))
    } catch (err) {
      t.is(err, down) // the caller's error, unchanged
      outcomes.push('failed')
    }
  }
  t.is(outcomes.filter((o) => o === 'failed').length, 3) // volumeThreshold: the third failure opened it
  t.deepEqual(events[0], { service: 'own', address: a, state: 'open' })
  t.true(outcomes.slice(6).every((o) => o === b))
  for (let i = 0; i < 10; i++) t.is(client.pick().address, b)
  t.is(client.endpoints().find((e) => e.address === a)!.failures, 3)

  // half-open: one call is let through to a; it succeeds, the breaker closes, a is back in rotation
  aDown = false
  await eventually(() => events.some((e) => e.state === 'halfOpen'), 'half-open')
  const after = new Set<string>()
  for (let i = 0; i < 4; i++) after.add(await client.call(fn))
  t.deepEqual([...after].sort(), [a, b])
  t.is(events.at(-1)?.state, 'closed')

  await t.throwsAsync(client.call('nope' as never), { instanceOf: InvalidArgumentError, message: /"nope"/ })
})

// Routing around a slow instance: 5 HTTP instances on loopback, each in a process of its own, answering
// after BASE_MS. In each faulty run one is made 20x slower for the middle third and another flaps between
// fast and 20x slower every FLAP_MS; p50 / p99 / p99.9 of every request for round robin, least-loaded
// and least-loaded + hedging, against the all-healthy baseline (round robin, no fault) of the same run.
// Also: the extra requests that hedges and retries added against their budgets, and how evenly
// least-loaded spreads 10,000 requests over equal healthy instances.
// The scenarios run in ROUNDS rounds (the order rotated each round, so the machine's drift hits all
// alike); each figure is the median over the rounds, and each ratio the median of the rounds' ratios.
// Env: DECAY_MS (least-loaded's decay; its default when unset), ROUNDS (3), RUN_MS (6000 per scenario), CONCURRENCY (8), BASE_MS (5), FLAP_MS (1000), ETCD_ENDPOINTS.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { EtcdKit, type ServiceClientOptions, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import { request } from 'undici'
import { fmt, machine, median, percentile, printGrid } from './stats.js'

const rounds = Number(process.env.ROUNDS ?? 3)
const runMs = Number(process.env.RUN_MS ?? 6_000)
const concurrency = Number(process.env.CONCURRENCY ?? 8)
const baseMs = Number(process.env.BASE_MS ?? 5)
const flapMs = Number(process.env.FLAP_MS ?? 1_000)
const SLOW = 20
/** least-loaded's decay (ms); the client's default when unset. */
const decay = process.env.DECAY_MS === undefined ? undefined : Number(process.env.DECAY_MS)
const leastLoaded = decay === undefined ? {} : { leastLoaded: { decay } }

// one instance: answers after `delay` ms; /__delay/N sets it, /__flap/N flaps it every N ms (0: stop),
// /__count reads and resets the requests served
const serverSource = `
const http = require('node:http')
const base = ${baseMs}
let delay = base
let served = 0
let flap
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/__')) {
    const [, what, arg] = req.url.split('/')
    if (what === '__delay') delay = Number(arg)
    if (what === '__flap') {
      clearInterval(flap)
      delay = base
      if (Number(arg) > 0) flap = setInterval(() => { delay = delay === base ? base * ${SLOW} : base }, Number(arg))
    }
    if (what === '__count') { res.end(String(served)); served = 0; return }
    return res.end('ok')
  }
  served++
  setTimeout(() => res.end('ok'), delay)
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => console.log(server.address().port))
`

async function startServer() {
  const child = spawn(process.execPath, ['-e', serverSource], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer]
  const address = `127.0.0.1:${chunk.toString().trim()}`
  const control = async (path: string) => {
    const res = await request(`http://${address}${path}`)
    return res.body.text()
  }
  return { address, control, stop: () => child.kill() }
}

type Server = Awaited<ReturnType<typeof startServer>>

interface Result {
  latencies: number[]
  sent: number
  served: number
  failed: number
}

/** `concurrency` loops of requests for `runMs`; with `faults`, the slow third and the flapping instance. */
async function scenario(
  kit: EtcdKit,
  servers: Server[],
  name: string,
  options: ServiceClientOptions,
  faults: boolean,
): Promise<Result> {
  await Promise.all(servers.map((s) => kit.register({ service: name, address: s.address })))
  const client = kit.service(name, options)
  await client.ready
  while (client.instances.length < servers.length) await new Promise((r) => setTimeout(r, 10))
  // warm up connections and the balancer's estimates
  const warmUntil = performance.now() + 1_000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmUntil) await (await client.request('/')).body.dump()
    }),
  )
  await Promise.all(servers.map((s) => s.control('/__count')))
  const timers: NodeJS.Timeout[] = []
  if (faults) {
    await servers[1]!.control(`/__flap/${flapMs}`)
    timers.push(setTimeout(() => void servers[0]!.control(`/__delay/${baseMs * SLOW}`), runMs / 3))
    timers.push(setTimeout(() => void servers[0]!.control(`/__delay/${baseMs}`), (2 * runMs) / 3))
  }
  const latencies: number[] = []
  let sent = 0
  let failed = 0
  const until = performance.now() + runMs
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now()
        sent++
        try {
          const res = await client.request('/')
          await res.body.dump()
          if (res.statusCode !== 200) failed++
        } catch {
          failed++
        }
        latencies.push(performance.now() - t0)
      }
    }),
  )
  for (const t of timers) clearTimeout(t)
  await servers[1]!.control('/__flap/0')
  await servers[0]!.control(`/__delay/${baseMs}`)
  const counts = await Promise.all(servers.map((s) => s.control('/__count')))
  await client.close()
  return { latencies, sent, served: counts.reduce((sum, c) => sum + Number(c), 0), failed }
}

/** Shares of 10,000 sequential requests over the (healthy, equal) instances: the largest deviation. */
async function spread(kit: EtcdKit, servers: Server[], name: string, options: ServiceClientOptions) {
  await Promise.all(servers.map((s) => kit.register({ service: name, address: s.address })))
  const client = kit.service(name, options)
  await client.ready
  while (client.instances.length < servers.length) await new Promise((r) => setTimeout(r, 10))
  await Promise.all(servers.map((s) => s.control('/__count')))
  const n = 10_000
  let left = n
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await (await client.request('/')).body.dump()
    }),
  )
  const counts = (await Promise.all(servers.map((s) => s.control('/__count')))).map(Number)
  await client.close()
  const share = n / servers.length
  return { counts, worst: Math.max(...counts.map((c) => Math.abs(c - share) / share)) }
}

const etcd = await sharedEtcd()
const servers = await Promise.all(Array.from({ length: 5 }, startServer))
const kit = new EtcdKit({ endpoints: etcd.endpoints, namespace: uniquePrefix('bench'), logger: silentLogger })
try {
  console.log(`machine: ${machine()}`)
  console.log(
    `5 instances answering after ${baseMs} ms (one ${SLOW}x slower for the middle third, one flapping every ${flapMs} ms); ${concurrency} concurrent loops, ${runMs} ms per scenario`,
  )
  const runs: Array<[string, ServiceClientOptions, boolean]> = [
    ['all healthy (baseline, round robin)', {}, false],
    ['round robin', {}, true],
    ['least-loaded', { balancer: 'least-loaded', ...leastLoaded }, true],
    [
      'least-loaded + hedging (after p95)',
      { balancer: 'least-loaded', ...leastLoaded, hedge: { after: 'p95' } },
      true,
    ],
    ['all healthy, least-loaded', { balancer: 'least-loaded', ...leastLoaded }, false],
  ]
  // a discarded run first: JIT, connections, etcd
  await scenario(
    kit,
    servers,
    'bal-warm',
    { balancer: 'least-loaded', ...leastLoaded, hedge: { after: 'p95' } },
    true,
  )
  const results: Result[][] = runs.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < runs.length; k++) {
      const i = (k + round) % runs.length
      const [, options, faults] = runs[i]!
      results[i]!.push(await scenario(kit, servers, `bal-${round}-${i}`, options, faults))
    }
    console.log(`round ${round + 1} of ${rounds} done (load average ${machine().split('load average ')[1]})`)
  }
  const p = (r: Result, q: number) => percentile(r.latencies, q)
  const med = (xs: number[]) => median(xs)
  printGrid(
    `Latency with one instance ${SLOW}x slower for the middle third and one flapping (medians of ${rounds} rounds)`,
    [
      'what',
      'requests',
      `over ${baseMs * 10} ms`,
      'p50',
      'p99',
      'p99.9',
      'p99 / healthy p99',
      'p99.9 / healthy p99.9',
      'extra load',
      'failed',
    ],
    runs.map(([what], i) => {
      const rs = results[i]!
      const ratio = (q: number) => med(rs.map((r, round) => p(r, q) / p(results[0]![round]!, q)))
      return [
        what,
        String(med(rs.map((r) => r.sent))),
        `${(med(rs.map((r) => r.latencies.filter((l) => l > baseMs * 10).length / r.sent)) * 100).toFixed(2)}%`,
        fmt(med(rs.map((r) => p(r, 50))), 'ms'),
        fmt(med(rs.map((r) => p(r, 99))), 'ms'),
        fmt(med(rs.map((r) => p(r, 99.9))), 'ms'),
        `${ratio(99).toFixed(2)}x`,
        `${ratio(99.9).toFixed(2)}x`,
        `${(med(rs.map((r) => (r.served - r.sent) / r.sent)) * 100).toFixed(1)}%`,
        String(rs.reduce((sum, r) => sum + r.failed, 0)),
      ]
    }),
  )
  console.log(
    '\nextra load: requests the instances served beyond those sent (hedges + retries); budgets: hedges 10% + 1/s, hedges + retries 20% + 10/s',
  )
  const rr = await spread(kit, servers, 'bal-spread-rr', {})
  const ll = await spread(kit, servers, 'bal-spread-ll', { balancer: 'least-loaded', ...leastLoaded })
  printGrid(
    '10,000 requests over 5 equal healthy instances',
    ['balancer', 'per instance', 'largest deviation from 20%'],
    [
      ['round robin', rr.counts.join(' / '), `${(rr.worst * 100).toFixed(1)}%`],
      ['least-loaded', ll.counts.join(' / '), `${(ll.worst * 100).toFixed(1)}% (target <= 10%)`],
    ],
  )
} finally {
  await kit.close()
  for (const s of servers) s.stop()
  await etcd.close()
}

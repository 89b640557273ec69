// Requests/s through kit.service(name).request() against a plain undici Pool, to the same HTTP server (in
// a process of its own) in the same run, for round robin and least-loaded: rotating rounds, medians, and
// the ratios (target >= 90%).
// Env: ROUNDS (default 10), ROUND_MS (1000), CONCURRENCY (32), ETCD_ENDPOINTS (else a throwaway etcd).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { EtcdKit, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'
import { Pool } from 'undici'

const rounds = Number(process.env.ROUNDS ?? 10)
const roundMs = Number(process.env.ROUND_MS ?? 1_000)
const concurrency = Number(process.env.CONCURRENCY ?? 32)

const serverSource = `
const http = require('node:http')
const server = http.createServer((req, res) => res.end('ok'))
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => console.log(server.address().port))
`

async function startServer() {
  const child = spawn(process.execPath, ['-e', serverSource], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer]
  return { address: `127.0.0.1:${chunk.toString().trim()}`, stop: () => child.kill() }
}

type Send = () => Promise<void>

/** Requests completed per second by `concurrency` loops over `roundMs`. */
async function measure(send: Send): Promise<number> {
  let done = 0
  const deadline = performance.now() + roundMs
  const loop = async () => {
    while (performance.now() < deadline) {
      await send()
      done++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, loop))
  return (done * 1_000) / (performance.now() - started)
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const etcd = await sharedEtcd()
const server = await startServer()
const kit = new EtcdKit({ endpoints: etcd.endpoints, namespace: uniquePrefix('bench'), logger: silentLogger })
try {
  await kit.register({ service: 'bench', address: server.address })
  await kit.register({ service: 'bench-ll', address: server.address })
  const client = kit.service('bench')
  const leastLoaded = kit.service('bench-ll', { balancer: 'least-loaded' })
  await Promise.all([client.ready, leastLoaded.ready])
  while (client.instances.length === 0 || leastLoaded.instances.length === 0)
    await new Promise((r) => setTimeout(r, 10))
  // the same timeouts the service client gives its pools
  const pool = new Pool(`http://${server.address}`, {
    connectTimeout: 2_000,
    headersTimeout: 10_000,
    bodyTimeout: 30_000,
  })
  const plain: Send = async () => {
    const res = await pool.request({ path: '/', method: 'GET' })
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
    await res.body.dump()
  }
  const viaKit: Send = async () => {
    const res = await client.request('/')
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
    await res.body.dump()
  }
  const viaLeastLoaded: Send = async () => {
    const res = await leastLoaded.request('/')
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
    await res.body.dump()
  }

  // warm both paths up (connections, JIT) before measuring
  const warm = Number(process.env.WARMUP_MS ?? 1_000)
  for (const send of [plain, viaKit, viaLeastLoaded]) {
    const until = performance.now() + warm
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) await send()
      }),
    )
  }

  const results = { plain: [] as number[], kit: [] as number[], ll: [] as number[] }
  const sends: Array<['plain' | 'kit' | 'll', Send]> = [
    ['plain', plain],
    ['kit', viaKit],
    ['ll', viaLeastLoaded],
  ]
  for (let r = 0; r < rounds; r++) {
    // rotate which goes first, so drift in the machine's load hits all alike
    for (let i = 0; i < sends.length; i++) {
      const [name, send] = sends[(i + r) % sends.length]!
      results[name].push(await measure(send))
    }
    console.log(
      `round ${r + 1}: plain undici ${results.plain.at(-1)!.toFixed(0)}/s, kit.service ${results.kit.at(-1)!.toFixed(0)}/s, least-loaded ${results.ll.at(-1)!.toFixed(0)}/s`,
    )
  }
  const p = median(results.plain)
  const k = median(results.kit)
  const ratio = k / p
  // each round measured both back to back: the median of those paired ratios cancels the machine's drift
  const paired = median(results.kit.map((v, i) => v / results.plain[i]!))
  console.log('')
  console.log(`| what (GET, ${concurrency} concurrent, ${rounds} x ${roundMs} ms) | requests/s (median) |`)
  console.log('| --- | --- |')
  console.log(`| plain undici Pool | ${p.toFixed(0)} |`)
  console.log(`| kit.service(name).request() | ${k.toFixed(0)} |`)
  console.log(`| ratio of medians | ${(ratio * 100).toFixed(1)}% (target >= 90%) |`)
  console.log(`| median of per-round ratios | ${(paired * 100).toFixed(1)}% |`)
  const l = median(results.ll)
  const pairedLl = median(results.ll.map((v, i) => v / results.plain[i]!))
  console.log(`| kit.service(name, { balancer: 'least-loaded' }).request() | ${l.toFixed(0)} |`)
  console.log(`| least-loaded: ratio of medians | ${((l / p) * 100).toFixed(1)}% |`)
  console.log(`| least-loaded: median of per-round ratios | ${(pairedLl * 100).toFixed(1)}% |`)
  await pool.close()
} finally {
  await kit.close()
  server.stop()
  await etcd.close()
}

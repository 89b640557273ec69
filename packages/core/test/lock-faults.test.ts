import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import {
  buildGoProgram,
  type ProxiedCluster,
  proxyCluster,
  spawnLines,
  startEtcd,
  uniquePrefix,
} from '@etcdkit/testing'
import test from 'ava'
import { EtcdKit, silentLogger } from '../src/index.js'
import { eventually } from './helpers.js'

// Node `kit.lock()` and Go `concurrency.Mutex` holders on one lock name, each doing a read-sleep-write
// increment of one counter guarded by its lock (etcdkit `ifOwner`, Go's `IsOwner` compare), while holders
// are paused past the TTL (a Node kit's connections stalled, a Go process SIGSTOPped), a Go holder is
// SIGKILLed, and the etcd leader is killed. The counter must equal the increments reported done: a holder
// that lost its lock without knowing it (Go 3.4's Mutex can return on an expired session) is refused by
// the guard, never writes a stale value. And no two Node holders whose signal had not aborted overlap.

const program = await buildGoProgram(fileURLToPath(new URL('fixtures/go-interop/', import.meta.url)))
const goTest = program.ok ? test : test.skip
if (!program.ok) console.error(`mixed-language lock test skipped: ${program.reason}`)

const TTL = 2
const RUN_MS = 24_000
const SLEEP_MS = 60

interface Outcomes {
  ok: number
  refused: number
  /** Writes whose outcome is unknown (etcd unreachable meanwhile): `[n, attempt id]`, resolved at the end. */
  unknown: Array<[number, string]>
}

/** One Node holder's critical sections, on this process's monotonic clock: from acquiring until release or abort. */
type Interval = [start: number, end: number, kit: number]

async function nodeHolder(
  i: number,
  kit: EtcdKit,
  name: string,
  counter: string,
  until: number,
  intervals: Interval[],
  out: Outcomes,
) {
  for (let attempt = 0; performance.now() < until; attempt++) {
    const held = await kit
      .lock(name)
      .acquire({ timeout: 5_000 })
      .catch(() => undefined)
    if (!held) continue
    const start = performance.now()
    let end = Number.POSITIVE_INFINITY
    const onAbort = () => {
      end = Math.min(end, performance.now())
    }
    held.signal.addEventListener('abort', onAbort, { once: true })
    try {
      const value = await kit.client.get(counter).string()
      const n = Number(value ?? '0') + 1
      await sleep(SLEEP_MS)
      const tag = `node${i}-${attempt}`
      try {
        if (await held.ifOwner({ put: { [counter]: String(n), [`${counter}/by/${n}`]: tag } })) out.ok++
        else out.refused++
      } catch {
        out.unknown.push([n, tag])
      }
    } catch {
      // the read failed (etcd unreachable): nothing written
    } finally {
      onAbort()
      intervals.push([start, end, i])
      await held.release()
    }
  }
}

goTest(
  'Node and Go lock holders under SIGSTOP, SIGKILL, stalls and leader kills: no lost increment, no Node overlap',
  async (t) => {
    t.timeout(RUN_MS + 60_000)
    if (!program.ok) return
    await using etcd = await startEtcd({ members: 3 })
    const prefix = uniquePrefix('mixed')
    const name = `${prefix}lock`
    const counter = `${prefix}counter`
    const until = performance.now() + RUN_MS

    // two Node kits, each through proxies of its own (to stall one like a paused VM)
    const proxies: ProxiedCluster[] = await Promise.all([proxyCluster(etcd), proxyCluster(etcd)])
    const kits = proxies.map((p) => new EtcdKit({ endpoints: p.endpoints, ttl: TTL, logger: silentLogger }))
    const node: Outcomes = { ok: 0, refused: 0, unknown: [] }
    const intervals: Interval[] = []
    const nodeDone = Promise.all(kits.map((k, i) => nodeHolder(i, k, name, counter, until, intervals, node)))

    // two Go processes, and a third started after one is SIGKILLed
    const goOut: Outcomes = { ok: 0, refused: 0, unknown: [] }
    const goProcs: ReturnType<typeof spawnLines>[] = []
    const startGo = (id: string, seconds: number) => {
      const g = spawnLines(program.path, [
        'counter',
        etcd.endpoints.join(','),
        name,
        counter,
        String(TTL),
        String(SLEEP_MS),
        String(seconds),
        id,
      ])
      goProcs.push(g)
      return g
    }
    startGo('go0', RUN_MS / 1000)
    const victim = startGo('go1', RUN_MS / 1000)
    const faults: string[] = []

    // faults, one after another
    await sleep(3_000)
    // a Node holder paused past its TTL: its connections stall, then flush
    const stalled = proxies[0]!
    for (const p of stalled.proxies) p.stall()
    faults.push('node0 stalled')
    await sleep((TTL + 1) * 1_000)
    for (const p of stalled.proxies) p.pass()

    // a Go holder paused past its TTL, while it holds the lock (or soon after, when it was slow to get it)
    const paused = goProcs[0]!
    const seen = paused.lines.length
    await eventually(() => paused.lines.slice(seen).includes('locked'), 'go0 holding', 10_000).catch(() => {})
    paused.child.kill('SIGSTOP')
    faults.push('go0 SIGSTOP')
    await sleep((TTL + 1) * 1_000)
    paused.child.kill('SIGCONT')

    // a Go holder killed
    await sleep(1_000)
    victim.child.kill('SIGKILL')
    faults.push('go1 SIGKILL')
    startGo('go2', Math.max(1, Math.round((until - performance.now()) / 1000)))

    // the leader killed, and back
    await sleep(1_500)
    const leader = await etcd.leader()
    await leader.kill()
    faults.push(`leader ${leader.name} killed`)
    await sleep(2_000)
    await leader.restart()

    await nodeDone
    await Promise.all(goProcs.map((g) => g.exited))
    const dangling: string[] = []
    for (const g of goProcs) {
      // a "write" line with no outcome after it: the process was killed with its txn sent (it may be applied)
      let pending: [number, string] | undefined
      for (const line of g.lines) {
        const [word, n, tag] = line.split(' ')
        if (word === 'write') pending = [Number(n), tag!]
        else if (word === 'ok') goOut.ok++
        else if (word === 'refused') goOut.refused++
        else if (word === 'unknown') goOut.unknown.push([Number(n), tag!])
        if (word === 'ok' || word === 'refused' || word === 'unknown') pending = undefined
      }
      if (pending) {
        goOut.unknown.push(pending)
        dangling.push(pending[1])
      }
    }
    // only the SIGKILLed process can stop between sending its txn and printing the outcome
    t.true(
      dangling.every((tag) => tag.startsWith('go1-')),
      `writes with no outcome: ${dangling.join(', ')}`,
    )

    // resolve unknown outcomes: the write happened if its attempt's tag is what `by/<n>` holds
    const direct = new EtcdKit({ endpoints: etcd.endpoints, logger: silentLogger })
    try {
      const applied = async (list: Array<[number, string]>) => {
        let count = 0
        for (const [n, tag] of list)
          if ((await direct.client.get(`${counter}/by/${n}`).string()) === tag) count++
        return count
      }
      const done = node.ok + goOut.ok + (await applied(node.unknown)) + (await applied(goOut.unknown))
      const value = Number((await direct.client.get(counter).string()) ?? '0')
      t.log(
        `faults: ${faults.join(', ')}; increments: node ${node.ok} ok / ${node.refused} refused / ${node.unknown.length} unknown, go ${goOut.ok} ok / ${goOut.refused} refused / ${goOut.unknown.length} unknown; counter ${value}`,
      )
      t.true(node.ok > 0 && goOut.ok > 0, 'both languages held the lock')
      t.is(value, done, 'the counter equals the guarded increments that were done')
      // every value from 1 to the counter was written exactly once (a lost update would rewrite one)
      const by = await direct.client.getAll().prefix(`${counter}/by/`).keys()
      t.is(by.length, value)

      // Node holders: no two critical sections of different kits overlap while neither's signal had aborted
      const sorted = [...intervals].sort((a, b) => a[0] - b[0])
      const overlaps: string[] = []
      for (let a = 0; a < sorted.length; a++)
        for (let b = a + 1; b < sorted.length && sorted[b]![0] < sorted[a]![1]; b++)
          if (sorted[a]![2] !== sorted[b]![2])
            overlaps.push(
              `kit ${sorted[a]![2]} [${sorted[a]![0].toFixed(0)}, ${sorted[a]![1].toFixed(0)}] and kit ${sorted[b]![2]} from ${sorted[b]![0].toFixed(0)}`,
            )
      t.deepEqual(overlaps, [])
    } finally {
      for (const g of goProcs) if (g.child.exitCode === null) g.child.kill('SIGKILL')
      await Promise.all([...kits.map((k) => k.close()), direct.close()])
      await Promise.all(proxies.map((p) => p.close()))
    }
  },
)

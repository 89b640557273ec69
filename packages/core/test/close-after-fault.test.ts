// kit.close() after an etcd fault must neither freeze the event loop nor abort the process (issue 20:
// a gRPC stream cancelled from inside an nghttp2 callback re-entered nghttp2, and Node spun until
// std::bad_alloc). Each scenario runs in a child process under a watchdog: a frozen loop cannot time
// itself out, so the parent kills a child whose lines stop.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const fixture = fileURLToPath(new URL('./fixtures/close-after-fault.ts', import.meta.url))
/** A round takes 1–5 s; a child silent for this long is frozen. */
const SILENCE_MS = 45_000

interface Outcome {
  closes: number[]
  done: boolean
  exit: string
  frozen: boolean
}

function runScenario(fault: string, closes: string, rounds: number): Promise<Outcome> {
  const child = spawn(
    process.execPath,
    ['--import=tsx', '--conditions=etcdkit-source', fixture, fault, closes, String(rounds)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const outcome: Outcome = { closes: [], done: false, exit: '', frozen: false }
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2_000)
  })
  let watchdog: NodeJS.Timeout
  const arm = () => {
    clearTimeout(watchdog)
    watchdog = setTimeout(() => {
      outcome.frozen = true
      child.kill('SIGKILL')
    }, SILENCE_MS)
  }
  arm()
  createInterface({ input: child.stdout }).on('line', (line) => {
    arm()
    const value = JSON.parse(line) as 'done' | { closeMs: number }
    if (value === 'done') outcome.done = true
    else outcome.closes.push(value.closeMs)
  })
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(watchdog)
      outcome.exit = `${signal ?? code}${code === 0 ? '' : `: ${stderr.trim().split('\n').slice(-3).join(' | ')}`}`
      resolve(outcome)
    })
  })
}

// 30 rounds in all, two children at a time; the wipe with concurrent closes froze about one round in two
const scenarios: [fault: string, closes: string, rounds: number][] = [
  ['wipe', 'concurrent', 10],
  ['wipe', 'sequential', 6],
  ['restart', 'concurrent', 4],
  ['restart', 'sequential', 2],
  ['compact', 'concurrent', 4],
  ['compact', 'sequential', 2],
  ['leader', 'concurrent', 2],
]

test('close() after a wipe, restart, compaction or leader kill finishes within 5 s and never freezes the process', async (t) => {
  t.timeout(240_000)
  const results: string[] = []
  const queue = [...scenarios]
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [fault, closes, rounds] = next
      const o = await runScenario(fault, closes, rounds)
      const name = `${fault}/${closes}`
      t.false(
        o.frozen,
        `${name}: the child went silent for ${SILENCE_MS} ms after ${o.closes.length} rounds (frozen)`,
      )
      t.true(o.done, `${name}: the child ended after ${o.closes.length} of ${rounds} rounds (${o.exit})`)
      t.is(o.exit, '0', `${name}: exit ${o.exit}`)
      t.true(
        o.closes.every((ms) => ms < 5_000),
        `${name}: a close took over 5 s: ${o.closes.join(', ')} ms`,
      )
      results.push(`${name} ${o.closes.length}/${rounds}: close max ${Math.max(0, ...o.closes)} ms`)
    }
  }
  await Promise.all([worker(), worker()])
  t.log(results.join('; '))
})

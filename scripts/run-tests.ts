// The whole test suite: one etcd for the run (test files isolate themselves by key prefix; files that
// stop or wipe etcd start their own), then ava, then one closing line `N passed, N failed`.
import { spawn } from 'node:child_process'
import { type EtcdCluster, startEtcd } from '@etcdkit/testing'

let etcd: EtcdCluster | undefined
if (!process.env.ETCD_ENDPOINTS) {
  etcd = await startEtcd()
  process.env.ETCD_ENDPOINTS = etcd.endpoints.join(',')
  process.stderr.write(`[etcdkit] etcd for this run at ${process.env.ETCD_ENDPOINTS}\n`)
}

const ava = spawn('pnpm', ['exec', 'ava', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, FORCE_COLOR: '0' },
})
let output = ''
for (const [from, to] of [
  [ava.stdout, process.stdout],
  [ava.stderr, process.stderr],
] as const) {
  from.setEncoding('utf8')
  from.on('data', (chunk: string) => {
    output += chunk
    to.write(chunk)
  })
}
const code: number = await new Promise((resolve) => ava.on('close', (c) => resolve(c ?? 1)))
await etcd?.close()

// ava prints a "passed" total only when nothing failed: count its per-test lines instead
const lines = (mark: string) => output.split('\n').filter((l) => l.trimStart().startsWith(mark)).length
const passed = lines('✔')
let failed = Math.max(lines('✘'), Number(/^\s*(\d+) tests? failed/m.exec(output)?.[1] ?? 0))
const skipped = Number(/^\s*(\d+) tests? skipped/m.exec(output)?.[1] ?? 0)
// uncaught exceptions, timeouts and crashed files fail the run without being counted as tests
if (code !== 0 && failed === 0) failed = 1
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
process.exit(code)

// `npm run bench`: every benchmark in turn, each against its own throwaway etcd (or ETCD_ENDPOINTS).
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'stats.ts'].includes(f))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
let failed = 0
for (const file of benches) {
  console.log(`\n# bench/${file}`)
  const res = spawnSync(process.execPath, ['--import=tsx', '--conditions=etcdkit-source', join(here, file)], {
    stdio: 'inherit',
  })
  if (res.status !== 0) failed++
}
process.exit(failed === 0 ? 0 : 1)

// `npm run bench`: every benchmark in turn, each in its own process against its own throwaway etcd (or
// ETCD_ENDPOINTS); `npm run bench -- lock scale` runs those whose file name starts with an argument.
// The packages are built first and the benchmarks import their dist/, the JavaScript users install (not
// the TypeScript sources through tsx's loader).
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const all = readdirSync(here).filter((f) => f.endsWith('.ts') && !['run.ts', 'stats.ts'].includes(f))
const benches = all.filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
if (benches.length === 0) {
  console.error(
    `no benchmark matches ${only.join(' ')}; there are: ${all.map((f) => f.slice(0, -3)).join(', ')}`,
  )
  process.exit(2)
}
const started = performance.now()
const build = spawnSync(process.execPath, [join(here, '..', 'scripts', 'build.mjs')], { stdio: 'inherit' })
if (build.status !== 0) {
  console.error('the build failed: no benchmark run')
  process.exit(1)
}
console.log(`(build: ${((performance.now() - started) / 1_000).toFixed(0)} s)`)
const failed: string[] = []
for (const file of benches) {
  console.log(`\n# bench/${file}`)
  const t0 = performance.now()
  const res = spawnSync(process.execPath, ['--import=tsx', join(here, file)], {
    stdio: 'inherit',
  })
  console.log(`\n(bench/${file}: ${((performance.now() - t0) / 1_000).toFixed(0)} s)`)
  if (res.status !== 0) failed.push(file)
}
console.log(
  `\n${benches.length} benchmarks in ${((performance.now() - started) / 1_000).toFixed(0)} s${failed.length ? `; FAILED: ${failed.join(', ')}` : ''}`,
)
process.exit(failed.length === 0 ? 0 : 1)

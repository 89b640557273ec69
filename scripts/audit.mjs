#!/usr/bin/env node
// Part of `pnpm run release:check`: no known advisory at high or above in what we ship (`pnpm audit --prod`:
// the packages' dependencies, not their devDependencies). It fails, loudly, when the audit cannot be done
// at all (registry's audit endpoint unreachable or refusing): an audit that did not run is not a pass.
import { spawnSync } from 'node:child_process'

const args = ['audit', '--prod', '--audit-level', 'high', '--json']
const run = spawnSync('pnpm', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
let report
try {
  report = JSON.parse(run.stdout)
} catch {
  report = undefined
}
if (report === undefined || report.error) {
  const why = report?.error
    ? `${report.error.code}: ${report.error.message}`
    : (run.stderr || run.stdout).trim()
  console.error(
    `[audit] FAILED: \`pnpm ${args.join(' ')}\` could not audit the dependencies (${why}). ` +
      'The release check needs the npm registry audit endpoint; run it where that endpoint answers.',
  )
  process.exit(1)
}
const counts = report.metadata?.vulnerabilities ?? {}
const serious = (counts.high ?? 0) + (counts.critical ?? 0)
const list = Object.values(report.advisories ?? {})
  .filter((a) => a.severity === 'high' || a.severity === 'critical')
  .map((a) => `${a.module_name} ${a.vulnerable_versions} (${a.severity}): ${a.title} ${a.url}`)
if (serious > 0 || run.status !== 0) {
  console.error(`[audit] FAILED: ${serious} advisories at high or above in what we ship:\n${list.join('\n')}`)
  process.exit(1)
}
console.log(
  `[audit] no advisories at high or above in the production dependencies (${JSON.stringify(counts)})`,
)

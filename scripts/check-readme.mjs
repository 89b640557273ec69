#!/usr/bin/env node
// Type-checks every ```ts block of README.md as a module of its own, against the workspace's packages:
// the README's usage must compile as written.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = join(root, 'examples', 'readme', 'snippets')
const blocks = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map(
  (m) => m[1],
)
rmSync(dir, { recursive: true, force: true })
mkdirSync(dir, { recursive: true })
for (const [i, code] of blocks.entries())
  writeFileSync(join(dir, `block-${i + 1}.ts`), `${code}\nexport {}\n`)
try {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'examples', 'readme')], {
    stdio: 'inherit',
  })
  console.log(`README: ${blocks.length} TypeScript blocks type-check`)
} catch {
  console.error(
    `README: a TypeScript block does not type-check (written to ${dir}, block-N is the Nth \`\`\`ts block)`,
  )
  process.exit(1)
}

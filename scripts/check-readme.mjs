#!/usr/bin/env node
// Type-checks every ```ts block of README.md and of each package's README (what npm shows) as a module of
// its own, against the workspace's packages: the READMEs' usage must compile as written.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = join(root, 'examples', 'readme', 'snippets')
const readmes = [
  ['README.md', 'block'],
  ...readdirSync(join(root, 'packages'))
    .filter((p) => existsSync(join(root, 'packages', p, 'README.md')))
    .map((p) => [join('packages', p, 'README.md'), `${p}-block`]),
]
rmSync(dir, { recursive: true, force: true })
mkdirSync(dir, { recursive: true })
let count = 0
for (const [file, name] of readmes) {
  const text = readFileSync(join(root, file), 'utf8')
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1])
  for (const [i, code] of blocks.entries())
    writeFileSync(join(dir, `${name}-${i + 1}.ts`), `${code}\nexport {}\n`)
  count += blocks.length
}
try {
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', join(root, 'examples', 'readme')], {
    stdio: 'inherit',
  })
  console.log(`READMEs: ${count} TypeScript blocks type-check`)
} catch {
  console.error(
    `READMEs: a TypeScript block does not type-check (written to ${dir}, {package}-block-N is the Nth \`\`\`ts block)`,
  )
  process.exit(1)
}

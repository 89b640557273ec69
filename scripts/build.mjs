#!/usr/bin/env node
// Builds every package twice: ESM into dist/ (tsc -b tsconfig.build.json, project references) and
// CommonJS into dist/cjs/ (each package's tsconfig.cjs.json), so that require(), Jest and TypeScript's
// `moduleResolution: node` work on every Node the packages support. dist/cjs/package.json marks that
// folder CommonJS for Node and for TypeScript (its .d.ts files then describe CommonJS modules).
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// in dependency order: a package's CommonJS build reads the CommonJS types of those before it
const packages = ['testing', 'core', 'grpc', 'fastify', 'express', 'decorators', 'nestjs', 'openfeature']
const tsc = join(root, 'node_modules', '.bin', 'tsc')
execFileSync(tsc, ['-b', 'tsconfig.build.json', ...packages.map((p) => `packages/${p}/tsconfig.cjs.json`)], {
  cwd: root,
  stdio: 'inherit',
})
for (const p of packages)
  writeFileSync(join(root, 'packages', p, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n')

// Installs the packages as a user does: packs every package (`pnpm pack` rewrites workspace:* ranges and
// applies publishConfig), checks what each tarball ships, installs the tarballs with npm into fresh apps
// and runs in each. `newest` and `oldest` (the newest versions of the peers, and the oldest each peer range
// allows): ESM and CommonJS consumers, Fastify (plugin awaited, not awaited, in a child scope), Express,
// gRPC, the CLI's binary, type checks under moduleResolution node10/node16/nodenext/bundler, and a Jest
// test. `nest11`: a NestJS 11 project as `nest new` writes it (CommonJS, Jest + ts-jest, its e2e config
// untouched) running an e2e test of @etcdkit/nestjs. `nest12`: a NestJS 12 ESM project, both HTTP
// adapters and Terminus, tested with vitest as `nest new` 12 sets up, and built with tsc. `nest12-cjs`: the
// same app compiled to CommonJS, tested with node:test. Needs `pnpm run build` first and the
// npm registry (one `npm install` per app, with a cache kept in node_modules/.cache).
// Run: npx tsx --conditions=etcdkit-source scripts/pack-test.ts   (ETCD_ENDPOINTS: use that etcd;
// PACK_TEST_APPS=nest11,nest12: only those apps)
import { execFile } from 'node:child_process'
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type EtcdCluster, startEtcd } from '@etcdkit/testing'

const run = promisify(execFile)
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const fixtures = join(root, 'scripts', 'pack-test')
const tsc = join(root, 'node_modules', '.bin', 'tsc')
const cache = join(root, 'node_modules', '.cache', 'etcdkit-pack-test-npm')
const packages = [
  'core',
  'fastify',
  'express',
  'grpc',
  'decorators',
  'testing',
  'nestjs',
  'cli',
  'openfeature',
]
/** Installed only by the apps that name them (Nest's peers would otherwise be installed in every app). */
const optIn = new Set(['nestjs'])
/** Packages published as ESM only (a binary), without the CommonJS build in dist/cjs. */
const esmOnly = new Set(['cli'])
const started = Date.now()
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`

interface App {
  name: string
  /**
   * The project's folder under scripts/pack-test (its package.json gives the dependencies besides the
   * tarballs). @default the flat files of scripts/pack-test, and a package.json made of `dependencies`
   */
  project?: string
  /** npm dependencies besides the tarballs and the project's own. */
  dependencies?: Record<string, string>
  /** The tarballs installed. @default every package but nestjs (whose Nest peers npm would install) */
  packages?: string[]
  /** The commands run in the app one after another, each `[program, ...args]`. */
  steps: string[][]
  /** Type checks (`tsc`), run two at a time after the steps. */
  checks?: string[][]
}

const node = (file: string) => ['node', file]
const typecheck = (resolution: string) => ['tsc', '-p', `tsconfig.${resolution}.json`]
const apps: App[] = [
  {
    name: 'newest',
    dependencies: {
      fastify: '^5.0.0',
      express: '^5.0.0',
      '@types/express': '^5.0.0',
      '@grpc/grpc-js': '^1.14.0',
      'reflect-metadata': '^0.2.2',
      '@types/node': '^20.19.0',
      jest: '^29.7.0',
    },
    steps: [
      node('esm.mjs'),
      node('cjs.cjs'),
      node('fastify.mjs'),
      node('express.mjs'),
      node('grpc.mjs'),
      node('cli.mjs'),
      ['node', 'node_modules/jest/bin/jest.js', '--ci', 'kit.test.js'],
    ],
    checks: ['node10', 'node16', 'node16-esm', 'nodenext', 'nodenext-esm', 'bundler'].map(typecheck),
  },
  {
    // the Node floor the manifests' engines state (undici 7 declares >= 20.18.1): the same apps run by
    // that Node, installed from npm's `node` package
    name: 'floor',
    dependencies: {
      node: '20.18.1',
      fastify: '^5.0.0',
      express: '^5.0.0',
      '@types/express': '^5.0.0',
      '@grpc/grpc-js': '^1.14.0',
      'reflect-metadata': '^0.2.2',
    },
    steps: [
      [
        'node_modules/.bin/node',
        '-e',
        'if (process.version !== "v20.18.1") throw new Error(process.version)',
      ],
      ['node_modules/.bin/node', 'esm.mjs'],
      ['node_modules/.bin/node', 'cjs.cjs'],
      ['node_modules/.bin/node', 'fastify.mjs'],
      ['node_modules/.bin/node', 'express.mjs'],
      ['node_modules/.bin/node', 'grpc.mjs'],
    ],
  },
  {
    // the low end of every peer range: NestJS 10's Fastify, Express 4, grpc-js 1.14.0
    name: 'oldest',
    packages: ['core', 'fastify', 'express', 'grpc', 'decorators', 'testing'],
    dependencies: {
      fastify: '4.0.0',
      express: '4.21.0',
      '@types/express': '4.17.21',
      '@grpc/grpc-js': '1.14.0',
      'reflect-metadata': '0.1.13',
      '@types/node': '^20.19.0',
    },
    steps: [node('esm.mjs'), node('cjs.cjs'), node('fastify.mjs'), node('express.mjs'), node('grpc.mjs')],
    checks: [typecheck('nest10')],
  },
  {
    // `npm run test:e2e` of a `nest new` project; ts-jest only transpiles (isolatedModules), so tsc checks
    // the types as `nest build` would (moduleResolution nodenext, CommonJS output)
    name: 'nest11',
    project: 'nest11',
    packages: ['core', 'decorators', 'nestjs'],
    steps: [['node', 'node_modules/jest/bin/jest.js', '--config', './test/jest-e2e.json', '--ci']],
    checks: [['tsc', '-p', 'tsconfig.json', '--noEmit']],
  },
  {
    name: 'nest12',
    project: 'nest12',
    packages: ['core', 'decorators', 'nestjs'],
    steps: [
      // `npm run test:e2e` as generated: vitest on the sources, with the generated vitest.config.e2e.ts
      ['node', 'node_modules/vitest/vitest.mjs', 'run', '--config', './vitest.config.e2e.ts'],
      ['tsc', '-p', 'tsconfig.json'],
    ],
  },
  {
    // a Nest 12 app on CommonJS: require() of Nest 12's ES modules (Node >= 20.19) and our CommonJS build
    name: 'nest12-cjs',
    project: 'nest12-cjs',
    packages: ['core', 'decorators', 'nestjs'],
    steps: [
      ['tsc', '-p', 'tsconfig.json'],
      [
        'node',
        '-e',
        'if (!require("fs").readFileSync("dist/src/app.module.js", "utf8").includes("require(\\"@etcdkit/nestjs\\")")) throw new Error("not compiled to CommonJS")',
      ],
      ['node', '--test', '--test-reporter=dot', 'dist/test/app.e2e-spec.js'],
    ],
  },
  {
    // @etcdkit/openfeature with the OpenFeature server SDK (its peer), both builds and nodenext types
    name: 'openfeature',
    project: 'openfeature',
    packages: ['core', 'openfeature'],
    steps: [node('flags.mjs'), node('flags.cjs')],
    checks: [['tsc', '-p', 'tsconfig.json']],
  },
]

async function sh(cwd: string, [program, ...args]: string[], env: NodeJS.ProcessEnv = process.env) {
  const bin = program === 'tsc' ? tsc : program!
  try {
    return await run(bin, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 })
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string }
    throw new Error(`${cwd}: \`${[program, ...args].join(' ')}\` failed\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

/** Packs every package into `dir` (one pnpm run); returns tarball paths by package name. */
async function pack(dir: string): Promise<Record<string, string>> {
  for (const p of packages) {
    if (!existsSync(join(root, 'packages', p, 'dist', esmOnly.has(p) ? '' : 'cjs', 'index.js')))
      throw new Error(`packages/${p} is not built: run \`pnpm run build\` first`)
  }
  const filters = packages.flatMap((p) => ['--filter', `@etcdkit/${p}`])
  await sh(root, ['pnpm', '-r', ...filters, 'pack', '--pack-destination', dir])
  const tarballs: Record<string, string> = {}
  for (const p of packages) {
    const file = readdirSync(dir).find((f) => f.startsWith(`etcdkit-${p}-`) && f.endsWith('.tgz'))
    if (file === undefined) throw new Error(`pnpm pack made no tarball for @etcdkit/${p}`)
    tarballs[`@etcdkit/${p}`] = join(dir, file)
    await checkTarball(join(dir, file), `@etcdkit/${p}`)
  }
  return tarballs
}

/** Addresses a README may link to: real sites of other projects (npm's pages of ours are real once published). */
const ALLOWED_URLS =
  /^(http:\/\/127\.0\.0\.1[:/]|https:\/\/(www\.npmjs\.com\/package\/|etcd\.io\/|nodejs\.org\/|nestjs\.com\/|fastify\.dev\/|expressjs\.com\/|grpc\.io\/|openfeature\.dev(\/|$)|flagd\.dev\/))/

/** What every published package must ship, and must not. */
async function checkTarball(file: string, name: string) {
  const { stdout } = await sh(root, ['tar', 'tzf', file])
  const files = new Set(stdout.split('\n').map((f) => f.replace(/^package\//, '')))
  const required = [
    'README.md',
    'LICENSE',
    'package.json',
    'dist/index.js',
    'dist/index.d.ts',
    'src/index.ts',
  ]
  if (!esmOnly.has(name.slice('@etcdkit/'.length)))
    required.push('dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json')
  // the second entry, @etcdkit/core/integration, in both builds (and for moduleResolution node10)
  if (name === '@etcdkit/core')
    required.push(
      'dist/integration/index.js',
      'dist/integration/index.d.ts',
      'dist/cjs/integration/index.js',
      'dist/cjs/integration/index.d.ts',
      'integration/package.json',
    )
  const missing = required.filter((f) => !files.has(f))
  if (missing.length > 0) throw new Error(`${name}: the tarball lacks ${missing.join(', ')}`)
  const { stdout: manifest } = await sh(root, ['tar', 'xzf', file, '-O', 'package/package.json'])
  if (manifest.includes('workspace:')) throw new Error(`${name}: the packed package.json keeps workspace:`)
  if (manifest.includes('etcdkit-source'))
    throw new Error(`${name}: the packed exports keep the etcdkit-source condition`)
  // no invented addresses: the project has no public repository or site yet, so a packed manifest names
  // none (repository, homepage, bugs) and the README links to none
  const urls = manifest.match(/https?:\/\/[^"\s]+/g) ?? []
  if (urls.length > 0) throw new Error(`${name}: the packed package.json names ${urls.join(', ')}`)
  const { stdout: readme } = await sh(root, ['tar', 'xzf', file, '-O', 'package/README.md'])
  const invented = (readme.match(/https?:\/\/[^)\s]+/g) ?? []).filter((u) => !ALLOWED_URLS.test(u))
  if (invented.length > 0) throw new Error(`${name}: the README links to ${invented.join(', ')}`)
}

async function install(dir: string, app: App, tarballs: Record<string, string>) {
  let manifest: { dependencies?: Record<string, string> } & Record<string, unknown>
  if (app.project) {
    cpSync(join(fixtures, app.project), dir, { recursive: true })
    manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  } else {
    mkdirSync(dir)
    for (const f of readdirSync(fixtures))
      if (statSync(join(fixtures, f)).isFile()) copyFileSync(join(fixtures, f), join(dir, f))
    // no "type": CommonJS by default, as in a NestJS project (and Jest's test files)
    manifest = { name: `pack-test-${app.name}`, private: true }
  }
  const dependencies = { ...manifest.dependencies, ...app.dependencies }
  for (const p of app.packages ?? packages.filter((p) => !optIn.has(p)))
    dependencies[`@etcdkit/${p}`] = `file:${tarballs[`@etcdkit/${p}`]}`
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ ...manifest, dependencies }, null, 2)}\n`)
  const t = Date.now()
  await sh(dir, ['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', '--cache', cache])
  console.log(`[pack-test] ${app.name}: npm install ${seconds(t)}`)
}

let etcd: EtcdCluster | undefined
const work = mkdtempSync(join(tmpdir(), 'etcdkit-pack-test-'))
try {
  if (!process.env.ETCD_ENDPOINTS) etcd = await startEtcd()
  const env = { ...process.env, ETCD_ENDPOINTS: process.env.ETCD_ENDPOINTS ?? etcd!.endpoints.join(',') }
  const tarballDir = join(work, 'tarballs')
  mkdirSync(tarballDir)
  const t = Date.now()
  const tarballs = await pack(tarballDir)
  console.log(`[pack-test] packed and checked ${packages.length} tarballs in ${seconds(t)}`)
  // the installs overlap: most of their time is waiting on the registry
  // PACK_TEST_APPS=oldest runs one app only (while developing)
  const only = process.env.PACK_TEST_APPS?.split(',').filter(Boolean)
  const chosen = apps.filter((app) => only === undefined || only.includes(app.name))
  await Promise.all(chosen.map((app) => install(join(work, app.name), app, tarballs)))
  for (const app of chosen) {
    const step = async (command: string[]) => {
      const t = Date.now()
      const { stdout, stderr } = await sh(join(work, app.name), command, env)
      // Jest writes its summary to stderr: its `Tests:` line says how many ran
      const tally = stderr.split('\n').filter((l) => /^Tests:/.test(l))
      const said = [...stdout.trim().split('\n'), ...tally].filter(Boolean).join('; ')
      console.log(`[pack-test] ${app.name}: ${command.join(' ')} (${seconds(t)})${said ? ` — ${said}` : ''}`)
    }
    // the type checks are CPU-bound and independent: two at a time; the steps one after another
    const checks = [...(app.checks ?? [])]
    for (const command of app.steps) await step(command)
    const workers = Array.from({ length: 2 }, async () => {
      for (let command = checks.shift(); command; command = checks.shift()) await step(command)
    })
    await Promise.all(workers)
  }
  console.log(`[pack-test] all passed in ${seconds(started)}`)
} catch (err) {
  console.error(`[pack-test] FAILED after ${seconds(started)}: ${(err as Error).message}`)
  process.exitCode = 1
} finally {
  await etcd?.close()
  rmSync(work, { recursive: true, force: true })
}

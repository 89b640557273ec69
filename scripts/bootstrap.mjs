#!/usr/bin/env node
// The README's two commands land here (`npm run demo`, `npm test`): make sure pnpm, the workspace's
// packages, etcd (and for the tests Go and Chromium) are installed (or say exactly what to install), then
// run the task.
// Plain JavaScript with no dependencies: it runs before anything is installed.
import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, statSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tasks = {
  setup: undefined, // install what is missing, run nothing
  demo: ['tsx', '--conditions=etcdkit-source', 'examples/demo/src/main.ts'],
  test: ['tsx', '--conditions=etcdkit-source', 'scripts/run-tests.ts'],
  bench: ['tsx', '--conditions=etcdkit-source', 'bench/run.ts'],
}
const [task, ...rest] = process.argv.slice(2)
if (!(task in tasks)) fail(`usage: node scripts/bootstrap.mjs <${Object.keys(tasks).join('|')}> [args]`)

const say = (msg) => process.stderr.write(`[etcdkit] ${msg}\n`)
function fail(msg) {
  process.stderr.write(`[etcdkit] ${msg}\n`)
  process.exit(1)
}
function onPath(name) {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin']) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {}
  }
  return undefined
}
function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts })
  if (res.error) fail(`${cmd} ${args.join(' ')}: ${res.error.message}`)
  return res.status ?? 1
}

// 1. Node
// undici 7 (core's HTTP client) declares node >= 20.18.1
const [major, minor, patch] = process.versions.node.split('.').map(Number)
if (major < 20 || (major === 20 && (minor < 18 || (minor === 18 && patch < 1))))
  fail(`Node.js >= 20.18.1 is needed; this is ${process.version}`)

// 2. pnpm (corepack's signature check fails on some machines: install it with npm)
let pnpm = onPath('pnpm')
if (!pnpm) {
  say('pnpm not found: installing it with `npm install -g pnpm@10`')
  if (run('npm', ['install', '-g', 'pnpm@10']) === 0) pnpm = onPath('pnpm')
  if (!pnpm)
    fail('could not install pnpm; install it yourself with `npm install -g pnpm@10` and run this again')
}

// 3. the workspace's packages, when missing or older than the lockfile
const modules = join(root, 'node_modules', '.modules.yaml')
if (!existsSync(modules) || statSync(modules).mtimeMs < statSync(join(root, 'pnpm-lock.yaml')).mtimeMs) {
  say('installing the workspace packages (pnpm install --frozen-lockfile)')
  if (run(pnpm, ['install', '--frozen-lockfile']) !== 0) fail('pnpm install failed (see above)')
}

// 4. etcd and etcdctl (Debian's packages give 3.4.23; tests and demos start their own etcd)
const hasEtcd = () =>
  (process.env.ETCD_BIN ? existsSync(process.env.ETCD_BIN) : onPath('etcd')) &&
  (process.env.ETCDCTL_BIN ? existsSync(process.env.ETCDCTL_BIN) : onPath('etcdctl'))
if (!hasEtcd()) {
  const howTo = 'apt-get update && apt-get install -y etcd-server etcd-client'
  const isRoot = process.getuid?.() === 0
  if (!isRoot || !onPath('apt-get'))
    fail(
      `etcd and etcdctl (>= 3.4) are needed and not found. Install them (Debian/Ubuntu: \`sudo ${howTo}\`), or set ETCD_BIN and ETCDCTL_BIN`,
    )
  say(`etcd not found: installing it (${howTo})`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (
    run('apt-get', ['update', '-qq'], { env }) !== 0 ||
    run('apt-get', ['install', '-y', '-qq', 'etcd-server', 'etcd-client'], { env }) !== 0 ||
    !hasEtcd()
  )
    fail(`could not install etcd; install it yourself: ${howTo}`)
  // the package may start a system etcd on 2379; ours never uses it
}
try {
  say(
    `using ${
      execFileSync(process.env.ETCD_BIN ?? onPath('etcd'), ['--version'])
        .toString()
        .split('\n')[0]
    }`,
  )
} catch {}

// 5. for the tests only: openssl, which makes the TLS certificates of the secure-etcd tests
if ((task === 'test' || task === 'setup') && !onPath('openssl') && !process.env.OPENSSL_BIN) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    say('openssl not found: installing it (apt-get install -y openssl) for the TLS tests')
    if (
      run('apt-get', ['update', '-qq'], { env }) !== 0 ||
      run('apt-get', ['install', '-y', '-qq', 'openssl'], { env }) !== 0
    )
      fail('could not install openssl; install it yourself (apt-get install -y openssl) or set OPENSSL_BIN')
  } else
    fail(
      'openssl is needed by the TLS tests: install it (Debian/Ubuntu: sudo apt-get install -y openssl) or set OPENSSL_BIN',
    )
}

// 6. for the tests only: Go and etcd's Go client (Debian's GOPATH sources), for the Go interop tests
const hasGo = () => onPath('go') && existsSync('/usr/share/gocode/src/go.etcd.io/etcd/clientv3')
if ((task === 'test' || task === 'setup') && !hasGo()) {
  const howTo = 'apt-get install -y --no-install-recommends golang-go golang-etcd-server-dev'
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    say(`installing Go and etcd's Go client for the Go interop tests (${howTo})`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const pkgs = ['install', '-y', '-qq', '--no-install-recommends', 'golang-go', 'golang-etcd-server-dev']
    if (run('apt-get', ['update', '-qq'], { env }) !== 0 || run('apt-get', pkgs, { env }) !== 0 || !hasGo())
      say(`could not install them: the Go interop tests will be skipped (install with: ${howTo})`)
  } else {
    say(
      `Go or etcd's Go client is missing: the Go interop tests will be skipped (Debian/Ubuntu: sudo ${howTo})`,
    )
  }
}

// 7. for the tests only: a headless browser for the web console's test (Debian's `chromium`)
const hasChromium = () => process.env.CHROMIUM_BIN || onPath('chromium') || onPath('chromium-browser')
if ((task === 'test' || task === 'setup') && !hasChromium()) {
  const howTo = 'apt-get install -y --no-install-recommends chromium'
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    say(`installing Chromium for the web console's browser test (${howTo})`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const pkgs = ['install', '-y', '-qq', '--no-install-recommends', 'chromium']
    if (
      run('apt-get', ['update', '-qq'], { env }) !== 0 ||
      run('apt-get', pkgs, { env }) !== 0 ||
      !hasChromium()
    )
      fail(`could not install Chromium; install it yourself (${howTo}) or set CHROMIUM_BIN`)
  } else {
    fail(`Chromium is needed for the web console's browser test: sudo ${howTo} (or set CHROMIUM_BIN)`)
  }
}

// 8. the task
if (!tasks[task]) process.exit(0)
const [bin, ...args] = tasks[task]
process.exit(run(pnpm, ['exec', bin, ...args, ...rest]))

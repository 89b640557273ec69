// Runs the main TypeScript snippets of README.md, each package's README and the integration docs against a
// real etcd, as written (type checks alone miss a view read before it is ready, a call that fails at run
// time, a leaked server): scripts/check-readme.mjs type-checks them, this runs them. Each snippet becomes
// a module in examples/readme/run/ (where the workspace's packages resolve) with only its addresses
// rewritten: endpoints to this test's etcd, ports to 0 on loopback. It passes when the module runs to its
// end (a marker appended) and exits 0; servers a snippet leaves open are ended by the appended exit.
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { type EtcdCluster, startEtcd } from '../src/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const dir = join(root, 'examples', 'readme', 'run')
const DONE = 'SNIPPET-RAN-TO-ITS-END'

/**
 * What the text around a block says is already there (a framework integration's default kit), or what
 * makes a block that only declares an app run it: added before / after the block, keyed by block number.
 */
const DEFAULT_KIT =
  "import { etcdDiscovery as __express } from '@etcdkit/express'\n__express({ service: 'reports' }) // its kit becomes the default\n"
const NEST_APP =
  "const { NestFactory } = await import('@nestjs/core')\nconst __app = await NestFactory.create(AppModule, { logger: false })\nawait __app.listen(0, '127.0.0.1')\nawait __app.close()\n"

/** Files whose ```ts blocks are run, every one of them. */
const sources: Array<{
  file: string
  before?: Record<number, string>
  after?: Record<number, string>
}> = [
  { file: 'README.md', before: { 6: DEFAULT_KIT, 7: "import 'reflect-metadata'\n" }, after: { 7: NEST_APP } },
  { file: 'packages/core/README.md' },
  { file: 'packages/express/README.md' },
  { file: 'packages/fastify/README.md' },
  { file: 'packages/decorators/README.md', before: { 1: DEFAULT_KIT } },
  { file: 'packages/grpc/README.md' },
  { file: 'packages/cli/README.md' },
  { file: 'packages/testing/README.md' },
  { file: 'docs/EXPRESS.md' },
  { file: 'docs/FASTIFY.md' },
]

function blocks(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8')
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!)
}

/** Only addresses change: the code is the snippet's own. */
function rewrite(code: string): string {
  return (
    code
      // endpoints in a snippet are examples: this test's etcd instead
      .replace(/\[\s*'[\d.]+:2379'(\s*,\s*'[\d.]+:2379')*\s*\]/g, "process.env.ETCD_ENDPOINTS!.split(',')")
      // fixed ports and every-interface binds: any free port on loopback
      .replace(/\.listen\(app, \d+\)/g, ".listen(app, 0, '127.0.0.1')")
      .replace(/\{ port: \d+, host: '0\.0\.0\.0' \}/g, "{ port: 0, host: '127.0.0.1' }")
      .replace(/\.listen\(\{ port: \d+ \}\)/g, ".listen({ port: 0, host: '127.0.0.1' })")
  )
}

let etcd: EtcdCluster
let users: ReturnType<typeof createServer>
test.before(async () => {
  etcd = await startEtcd()
  // the `users` service the snippets call: a real instance, registered in the Go format
  users = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ path: req.url }))
  })
  await new Promise<void>((resolve) => users.listen(0, '127.0.0.1', resolve))
  const address = `127.0.0.1:${(users.address() as { port: number }).port}`
  await etcd.etcdctl([
    'put',
    `services/users/${address}`,
    JSON.stringify({ Op: 0, Addr: address, Metadata: {} }),
  ])
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  // what a Nest project compiles with (tsx reads the tsconfig of its working directory)
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { experimentalDecorators: true, emitDecoratorMetadata: true, target: 'ES2022' },
    }),
  )
})
test.after.always(async () => {
  users?.close()
  await etcd?.close()
})

function runModule(file: string, timeoutMs = 45_000) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import=tsx', '--conditions=etcdkit-source', file], {
      cwd: dirname(file),
      env: { ...process.env, ETCD_ENDPOINTS: etcd.endpoints.join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c))
    child.stderr.on('data', (c: Buffer) => (out += c))
    const timer = setTimeout(() => {
      out += `\n[killed after ${timeoutMs} ms]`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

for (const { file, before = {}, after = {} } of sources) {
  for (const [i, code] of blocks(file).entries()) {
    const title = `${file} block ${i + 1} runs against a real etcd`
    test.serial(title, async (t) => {
      t.timeout(60_000)
      const name = `${file.replace(/[/.]/g, '-')}-${i + 1}.ts`
      const path = join(dir, name)
      const text = `${before[i + 1] ?? ''}${rewrite(code)}\n${after[i + 1] ?? ''}`
      writeFileSync(path, `${text}console.log('${DONE}')\nprocess.exit(0)\nexport {}\n`)
      const { code: exit, out } = await runModule(path)
      t.true(out.includes(DONE) && exit === 0, `${name} exited ${exit} before its end:\n${out.slice(-3_000)}`)
    })
  }
}

test('no snippet opens a discover() view inside a request handler (each call is a new view, [] at first)', (t) => {
  const offenders: string[] = []
  for (const { file } of sources) {
    for (const [i, code] of blocks(file).entries()) {
      let inHandler = false
      for (const line of code.split('\n')) {
        if (/\.(get|post|put|delete|all|use)\(\s*['"`]/.test(line) && /=>|function/.test(line))
          inHandler = true
        if (inHandler && /\bdiscover\(/.test(line)) offenders.push(`${file} block ${i + 1}: ${line.trim()}`)
        if (inHandler && (/^\}\)/.test(line) || /\)\)\s*$/.test(line))) inHandler = false
      }
    }
  }
  t.deepEqual(offenders, [])
})

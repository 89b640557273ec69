import { fileURLToPath } from 'node:url'
import { EtcdKit, type EtcdKitOptions, silentLogger } from '@etcdkit/core'
import { sharedEtcd, spawnLines, uniquePrefix } from '@etcdkit/testing'
import { type Io, run } from '../src/index.js'

export const etcd = sharedEtcd

/** A namespace of its own and kits in it, closed by the test's teardown. */
export async function scene(t: { teardown(fn: () => unknown): void }, label: string) {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix(label)
  const kits: EtcdKit[] = []
  t.teardown(() => Promise.all(kits.map((k) => k.close())))
  return {
    endpoints,
    namespace,
    kit(options: EtcdKitOptions = {}) {
      const kit = new EtcdKit({ endpoints, namespace, logger: silentLogger, ...options })
      kits.push(kit)
      return kit
    },
    /** etcdctl against the test's etcd (keys are absolute: put the namespace in front). */
    kitEtcdctl: async (args: readonly string[]) => (await etcd()).etcdctl(args),
    /** Runs the CLI in process against this namespace. */
    cli(...args: string[]) {
      return cli(['--endpoints', endpoints.join(','), '--namespace', namespace, ...args])
    },
    /** Starts a long-running CLI command (`watch ...`) against this namespace; see `startCli`. */
    start(...args: string[]) {
      return startCli(['--endpoints', endpoints.join(','), '--namespace', namespace, ...args])
    },
  }
}

/** Runs `etcdkit ...args` in process; resolves with its exit code and output. */
export async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const running = startCli(args, env)
  const code = await running.exited
  return { code, stdout: running.stdout, stderr: running.stderr }
}

/** Runs a long-running command (`watch`, `console`) in process until `interrupt()`, as Ctrl-C would. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let interrupt!: () => void
  const out = { stdout: '', stderr: '' }
  const io: Io = {
    stdout: { write: (s: string) => (out.stdout += s) },
    stderr: { write: (s: string) => (out.stderr += s) },
    env,
    password: (user) => Promise.reject(new Error(`no password for ${user} in this test`)),
    interrupted: new Promise<void>((resolve) => (interrupt = resolve)),
  }
  const exited = run(args, io)
  return {
    exited,
    get stdout() {
      return out.stdout
    },
    get stderr() {
      return out.stderr
    },
    /** Interrupts the command; resolves with its exit code. */
    interrupt() {
      interrupt()
      return exited
    },
  }
}

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url))

/** The real binary in a child process (exit codes, signals, long-running commands). */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  return spawnLines(process.execPath, ['--import=tsx', '--conditions=etcdkit-source', bin, ...args], env)
}

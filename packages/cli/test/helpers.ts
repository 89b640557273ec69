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
  }
}

/** Runs `etcdkit ...args` in process; resolves with its exit code and output. */
export async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = ''
  let stderr = ''
  const io: Io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
    password: (user) => Promise.reject(new Error(`no password for ${user} in this test`)),
    interrupted: new Promise(() => {}),
  }
  const code = await run(args, io)
  return { code, stdout, stderr }
}

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url))

/** The real binary in a child process (exit codes, signals, long-running commands). */
export function spawnCli(args: string[], env: Record<string, string> = {}) {
  return spawnLines(process.execPath, ['--import=tsx', '--conditions=etcdkit-source', bin, ...args], env)
}

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { etcdctlBinary } from './binaries.js'

/** How etcdctl reaches a secured etcd: TLS files and a user. */
export interface EtcdctlAccess {
  /** The CA file that signed etcd's certificate (TLS). */
  caFile?: string
  /** A client certificate and key file (mutual TLS). */
  certFile?: string
  keyFile?: string
  /** `name:password` (auth). */
  user?: string
}

export interface EtcdctlOptions {
  /** Text written to etcdctl's standard input (e.g. for `put` with a value starting with `-`). */
  input?: string
  /** @default 10_000 */
  timeoutMs?: number
  /** TLS files and user for a secured etcd. @default none (plaintext, no auth) */
  access?: EtcdctlAccess
}

/** etcdctl's flags for `access`. */
export function accessFlags(access: EtcdctlAccess | undefined): string[] {
  if (!access) return []
  const flags: string[] = []
  if (access.caFile) flags.push(`--cacert=${access.caFile}`)
  if (access.certFile) flags.push(`--cert=${access.certFile}`)
  if (access.keyFile) flags.push(`--key=${access.keyFile}`)
  if (access.user) flags.push(`--user=${access.user}`)
  return flags
}

/** Runs `etcdctl --endpoints=… <args>` (API v3) and resolves to its standard output. */
export function etcdctl(endpoints: readonly string[], args: readonly string[], options: EtcdctlOptions = {}) {
  const bin = etcdctlBinary()
  return new Promise<string>((resolve, reject) => {
    const child = execFile(
      bin,
      [`--endpoints=${endpoints.join(',')}`, ...accessFlags(options.access), ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: options.timeoutMs ?? 10_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(`${bin} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }),
          )
        else resolve(stdout)
      },
    )
    if (options.input !== undefined) child.stdin?.end(options.input)
  })
}

/**
 * Starts a long-running etcdctl command (`lock`, `elect`, `watch`) and returns the child process.
 * Its standard output is available line by line through `lines`.
 */
export function spawnEtcdctl(endpoints: readonly string[], args: readonly string[], access?: EtcdctlAccess) {
  return spawnLines(
    etcdctlBinary(),
    [`--endpoints=${endpoints.join(',')}`, ...accessFlags(access), ...args],
    { ETCDCTL_API: '3' },
  )
}

/** A child process whose standard output is read line by line (etcdctl, the Go interop program). */
export function spawnLines(bin: string, args: readonly string[], env: Record<string, string> = {}) {
  const child: ChildProcess = spawn(bin, args, {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const waiters: Array<{ match: (l: string) => boolean; resolve: (l: string) => void }> = []
  let buffered = ''
  child.stdout?.setEncoding('utf8')
  child.stdout?.on('data', (chunk: string) => {
    buffered += chunk
    let nl = buffered.indexOf('\n')
    while (nl >= 0) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      lines.push(line)
      for (const w of waiters.splice(0)) {
        if (w.match(line)) w.resolve(line)
        else waiters.push(w)
      }
      nl = buffered.indexOf('\n')
    }
  })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk
  })
  // 'close', not 'exit': it comes after the child's output has all been read, so `lines` is complete
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  return {
    child,
    lines,
    exited,
    get stderr() {
      return stderr
    },
    /** Resolves with the first output line (already printed or future) that `match` accepts. */
    waitForLine(match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
      const seen = lines.find(match)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`${bin} ${args.join(' ')}: no matching line in ${timeoutMs} ms (stderr: ${stderr})`),
            ),
          timeoutMs,
        )
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer)
            resolve(l)
          },
        })
      })
    },
    /** Sends SIGINT (etcdctl releases its lock / resigns and exits) and waits for the exit. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT')
      return exited
    },
    /** Closes the child's standard input (the Go interop program then releases and exits) and waits. */
    async endInput() {
      child.stdin?.end()
      return exited
    },
  }
}

import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

/** Where Debian's golang-etcd-server-dev puts etcd's Go client (GOPATH layout). */
const GOPATH = '/usr/share/gocode'
const INSTALL = 'apt-get install -y --no-install-recommends golang-go golang-etcd-server-dev'

export type GoProgram = { ok: true; path: string } | { ok: false; reason: string }

/**
 * Builds the Go program in `dir` (package main, one directory, importing go.etcd.io/etcd/clientv3) against
 * etcd's Go client 3.4 as Debian packages it, offline, in GOPATH mode; the binary is cached in the temp dir
 * by the source's hash. Resolves `{ ok: false, reason }` when Go or the client sources are not installed.
 */
export async function buildGoProgram(dir: string, mainFile = 'main.go'): Promise<GoProgram> {
  const go = ['/usr/bin/go', '/usr/lib/go/bin/go'].find((p) => existsSync(p))
  if (!go) return { ok: false, reason: `no Go toolchain (${INSTALL})` }
  if (!existsSync(join(GOPATH, 'src/go.etcd.io/etcd/clientv3')))
    return { ok: false, reason: `etcd's Go client sources are not in ${GOPATH} (${INSTALL})` }
  const hash = createHash('sha256')
    .update(readFileSync(join(dir, mainFile)))
    .digest('hex')
    .slice(0, 12)
  const path = join(tmpdir(), `etcdkit-go-${hash}`)
  if (existsSync(path)) return { ok: true, path }
  const env = {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH,
    GOCACHE: join(tmpdir(), 'etcdkit-gocache'),
    GOFLAGS: '',
  }
  try {
    await promisify(execFile)(go, ['build', '-o', `${path}.tmp`, '.'], { cwd: dir, env, timeout: 300_000 })
    await promisify(execFile)('mv', [`${path}.tmp`, path])
  } catch (err) {
    throw new Error(`go build in ${dir} failed: ${(err as { stderr?: string }).stderr ?? err}`, {
      cause: err,
    })
  }
  return { ok: true, path }
}

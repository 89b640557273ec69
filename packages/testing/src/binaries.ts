import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

const INSTALL_HINT =
  'install it with `apt-get update && apt-get install -y etcd-server etcd-client` (Debian/Ubuntu, etcd >= 3.4), ' +
  'or set ETCD_BIN / ETCDCTL_BIN to the binaries'

/** Thrown when the etcd, etcdctl (or, for TLS, openssl) binary cannot be found. */
export class EtcdBinaryNotFoundError extends Error {
  readonly code = 'ETCDKIT_TESTING_BINARY_NOT_FOUND'
  constructor(
    readonly binary: string,
    where: string,
    hint = INSTALL_HINT,
  ) {
    super(`${binary} not found (${where}): ${hint}`)
    this.name = 'EtcdBinaryNotFoundError'
  }
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** @internal The path of `name`: `envVar` if set, else the first on PATH; `hint` says how to install it. */
export function locate(name: string, envVar: string, hint = INSTALL_HINT): string {
  const fromEnv = process.env[envVar]
  if (fromEnv) {
    if (!executable(fromEnv))
      throw new EtcdBinaryNotFoundError(name, `${envVar}=${fromEnv} is not executable`, hint)
    return fromEnv
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  for (const dir of [...dirs, '/usr/bin', '/usr/local/bin']) {
    const candidate = join(dir, name)
    if (executable(candidate)) return candidate
  }
  throw new EtcdBinaryNotFoundError(name, `not in ${envVar} nor on PATH`, hint)
}

/** Path of the etcd server binary: `ETCD_BIN`, else the first `etcd` on PATH. */
export function etcdBinary(): string {
  return locate('etcd', 'ETCD_BIN')
}

/** Path of etcdctl: `ETCDCTL_BIN`, else the first `etcdctl` on PATH. */
export function etcdctlBinary(): string {
  return locate('etcdctl', 'ETCDCTL_BIN')
}

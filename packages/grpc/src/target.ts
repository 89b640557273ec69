import { InvalidArgumentError } from '@etcdkit/core'

/** The path of a grpc-js target URI (`etcdv3:///hello` → `hello`), without leading or trailing slashes. */
export function targetPath(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '')
}

/**
 * The service an `etcd:///{prefix}` target names. Go's naming/resolver watches every key under
 * `{prefix}/`; a kit's Discovery watches `{registryPrefix}{service}/`, so the prefix must be exactly
 * `{registryPrefix}{service}`. Any other prefix is refused (a kit with another `registryPrefix` reads it).
 */
export function serviceOfPrefix(prefix: string, registryPrefix: string, target: string): string {
  const full = `${prefix}/`
  const service = full.startsWith(registryPrefix) ? full.slice(registryPrefix.length, -1) : ''
  if (service === '' || service.includes('/')) {
    throw new InvalidArgumentError(
      `target ${JSON.stringify(target)}: the prefix ${JSON.stringify(prefix)} is not ` +
        `"${registryPrefix}{service}" (this kit's registryPrefix is ${JSON.stringify(registryPrefix)}; ` +
        'register the resolver with a kit whose registryPrefix holds this prefix)',
    )
  }
  return service
}

/**
 * go-zero's target form, `etcd:///{hosts}?key={Key}` (zrpc/resolver/target.go `BuildDiscovTarget`): the Key,
 * and the service named after it (`user.rpc` and `/zrpc/user.rpc` name `user`); `undefined` for a target
 * without a `key` query.
 */
export function goZeroTarget(path: string, target: string): { key: string; service: string } | undefined {
  const query = path.indexOf('?')
  if (query < 0) return undefined
  const key = new URLSearchParams(path.slice(query + 1)).get('key')
  if (key === null) return undefined
  const service = (key.slice(key.lastIndexOf('/') + 1) || key).replace(/\.rpc$/, '')
  if (key === '' || !/^[A-Za-z0-9._-]{1,200}$/.test(service))
    throw new InvalidArgumentError(
      `target ${JSON.stringify(target)}: the go-zero key ${JSON.stringify(key)} names no service (expected a Key such as "user.rpc")`,
    )
  return { key, service }
}

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

// The config machinery on another prefix of a kit's namespace: what @etcdkit/openfeature keeps its flags on.
import type { Config } from '../config/config.js'
import { InvalidArgumentError, show } from '../errors.js'
import { type EtcdKit, kitInternals } from '../kit.js'
import { checkConfigKey } from '../validate.js'

/**
 * `kit.config`'s machinery on `prefix` (namespace-relative, ending in "/", e.g. `flags/`) instead of the
 * config prefix: one mirror of the prefix per kit (one range, then one watch on the kit's watch stream,
 * relisted on compaction), handles that keep their last good value, staleness events, writes with writer
 * records (`_etcdkit/config-writers/{prefix}{key}`), `history` and guarded `rollback`, and, with the kit's
 * `configCache`, a cache file of its own to start from while etcd is down. No service overrides: a key is
 * `{prefix}{key}`, exactly. So a role needs only `{prefix}` for it, and the config prefix never sees it.
 * Every call with the same kit and prefix returns the same `Config`; the kit's `close()` closes it.
 */
export function prefixConfig(kit: EtcdKit, prefix: string): Config {
  checkConfigKey(prefix, 'prefix', true)
  // "" would be the whole namespace (registrations, locks and config in one mirror)
  if (prefix === '' || !prefix.endsWith('/'))
    throw new InvalidArgumentError(`invalid prefix ${show(prefix)}: expected a key prefix ending in "/"`)
  return kitInternals(kit).configAt(prefix)
}

// The registry as the CLI and the console show it: one catalog per registry dialect (every dialect whose
// keys have a common root, or the one `--dialect` names), merged; each instance says which dialect it was
// read in.
import { EventEmitter } from 'node:events'
import {
  type Catalog,
  type CatalogInstance,
  DIALECT_NAMES,
  type DialectName,
  type EtcdKit,
  EtcdKitError,
} from '@etcdkit/core'

/** A registry key of some dialect whose value is not a registration of that dialect. */
export interface RegistryInvalid {
  dialect: DialectName
  key: string
  /** The service the key names (from its place under the dialect's root). */
  service: string
  value: string
  reason: string
}

/** A dialect left out of a listing of every dialect, and why (a role that may not read its root). */
export interface SkippedDialect {
  dialect: DialectName
  root: string
  reason: string
}

export interface RegistryViewEvents {
  /** Some dialect's services changed (also once each dialect's first list is loaded). */
  change: []
  invalid: [entry: RegistryInvalid]
}

/**
 * Every service of the dialects shown (or `service` only), kept current. `dialect` (from `--dialect`) names
 * one; without it, every dialect whose keys have a common root is read (not go-zero, whose Keys are free:
 * core refuses a catalog of all its services, and that refusal is what leaves it out here), or, for one
 * `service`, every dialect (go-zero's default Key `{service}.rpc` included). When every dialect is read, one whose root
 * the user may not read (permission denied) is left out and listed in `skipped`; the `etcd` dialect, or a
 * dialect asked for by name, fails the listing instead.
 */
export class RegistryView extends EventEmitter<RegistryViewEvents> {
  /** Resolves once every dialect shown has its first list. */
  readonly ready: Promise<void>
  readonly skipped: SkippedDialect[] = []
  #catalogs: Catalog[]
  #services: ReadonlyMap<string, readonly CatalogInstance[]> = new Map()

  constructor(kit: EtcdKit, dialect?: string, service?: string) {
    super()
    // core checks the names and refuses an unknown dialect (or go-zero without a service), naming it
    const named = dialect !== undefined
    const one = service === undefined ? {} : { service }
    this.#catalogs = (named ? [dialect as DialectName] : DIALECT_NAMES).flatMap((d) => {
      try {
        return [kit.catalog({ dialect: d, ...one })]
      } catch (err) {
        // every service of a dialect without a common root (go-zero): not in a listing of every dialect
        const noRoot = err instanceof EtcdKitError && err.code === 'ETCDKIT_INVALID_ARGUMENT'
        if (noRoot && !named && service === undefined) return []
        throw err
      }
    })
    for (const c of this.#catalogs) {
      c.on('change', () => this.#merge())
      c.on('invalid', (entry) => {
        const rest = entry.key.slice(c.root.length)
        const slash = rest.indexOf('/')
        this.emit('invalid', {
          ...entry,
          dialect: c.dialect,
          service: slash > 0 ? rest.slice(0, slash) : rest,
        })
      })
    }
    this.ready = Promise.all(
      this.#catalogs.map((c) =>
        c.ready.catch((err: unknown) => {
          const refused =
            err instanceof EtcdKitError &&
            (err.code === 'ETCDKIT_PERMISSION_DENIED' || err.code === 'ETCDKIT_AUTH_FAILED')
          if (named || c.dialect === 'etcd' || !refused) throw err
          this.skipped.push({ dialect: c.dialect, root: c.root, reason: (err as Error).message })
          this.#catalogs = this.#catalogs.filter((other) => other !== c)
          c.close()
          this.#merge()
        }),
      ),
    ).then(() => {})
    this.ready.catch(() => {})
  }

  /** The dialects shown, in the order of `DIALECT_NAMES`. */
  get dialects(): DialectName[] {
    return this.#catalogs.map((c) => c.dialect)
  }

  /** The key prefixes (kit-relative) the dialects shown keep their services under. */
  get roots(): string[] {
    return this.#catalogs.map((c) => c.root)
  }

  /** Each service's instances across the dialects shown: by dialect (in `dialects` order), then by key. */
  get services(): ReadonlyMap<string, readonly CatalogInstance[]> {
    return this.#services
  }

  close() {
    for (const c of this.#catalogs) c.close()
  }

  #merge() {
    const merged = new Map<string, CatalogInstance[]>()
    for (const c of this.#catalogs)
      for (const [service, instances] of c.services) {
        const list = merged.get(service)
        if (list) list.push(...instances)
        else merged.set(service, [...instances])
      }
    this.#services = new Map([...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    this.emit('change')
  }
}

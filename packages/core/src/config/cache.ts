// A local copy of the config mirror, so a process can start (and say it is stale) while etcd is unreachable.
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidArgumentError, show } from '../errors.js'
import type { Logger } from '../ops/logger.js'
import { isPlainObject } from '../validate.js'
import type { TreeEntry } from './entry.js'

/** The `configCache` option of `EtcdKit`. */
export interface ConfigCacheOptions {
  /** The folder of the cache files (created if missing): one file per namespace, config prefix and service. */
  dir: string
  /**
   * How long the first read from etcd may take before the cached values are served (ms); when etcd
   * answers later, its values replace them. @default 1_000
   */
  wait?: number
  /**
   * Keep the values in hand when a read of etcd finds the config prefix empty although it was not (the
   * whole tree deleted, or an etcd wiped or restored empty): a warning instead of every value falling back
   * to its default. Changes that arrive by watch still apply. @default false
   */
  keepOnEmpty?: boolean
}

const FORMAT = 'etcdkit-config-cache'

interface CacheFile {
  format: typeof FORMAT
  version: 1
  namespace: string
  prefix: string
  service: string | null
  /** The etcd revision the mirror reflected when saved. */
  revision: string
  savedAt: string
  entries: Record<string, { text: string; revision: string; createRevision: string; version: number }>
}

/**
 * Saves the kit's config mirror to `{dir}/{file}` (written to a temporary file, then renamed over the old
 * one, so a crash never leaves half a file) and loads it at start. A file that is corrupt or belongs to
 * another namespace, prefix or service is ignored with a warning.
 */
export class ConfigCache {
  readonly file: string
  readonly wait: number
  readonly keepOnEmpty: boolean
  readonly #ident: { namespace: string; prefix: string; service: string | null }
  readonly #log: Logger
  #pending: { entries: Map<string, TreeEntry>; revision: string } | undefined
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> = Promise.resolve()

  constructor(
    options: ConfigCacheOptions,
    namespace: string,
    prefix: string,
    service: string | undefined,
    log: Logger,
  ) {
    if (!isPlainObject(options as unknown) || typeof options.dir !== 'string' || options.dir === '')
      throw new InvalidArgumentError(
        `invalid configCache ${show(options)}: expected { dir: string, wait?, keepOnEmpty? }`,
      )
    const wait = options.wait ?? 1_000
    if (!Number.isSafeInteger(wait) || wait < 0 || wait > 2 ** 31 - 1)
      throw new InvalidArgumentError(`invalid configCache.wait ${show(wait)}: expected a number of ms >= 0`)
    if (options.keepOnEmpty !== undefined && typeof options.keepOnEmpty !== 'boolean')
      throw new InvalidArgumentError(`invalid configCache.keepOnEmpty ${show(options.keepOnEmpty)}`)
    this.wait = wait
    this.keepOnEmpty = options.keepOnEmpty ?? false
    this.#log = log
    this.#ident = { namespace, prefix, service: service ?? null }
    const id = `${namespace}${prefix}@${service ?? ''}`
    const readable = id.replace(/[^A-Za-z0-9._@-]+/g, '_').slice(0, 80)
    const hash = createHash('sha256').update(id).digest('hex').slice(0, 12)
    this.file = join(options.dir, `etcdkit-config.${readable}.${hash}.json`)
  }

  /** The cached mirror, or `undefined` (none, unreadable, corrupt or foreign: the last two with a warning). */
  load(): { entries: Map<string, TreeEntry>; revision: string; savedAt: string } | undefined {
    let text: string
    try {
      text = readFileSync(this.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#log.warn({ err, file: this.file }, 'config cache unreadable; ignoring it')
      return undefined
    }
    const ignore = (why: string) => {
      this.#log.warn({ file: this.file, why }, 'config cache ignored')
      return undefined
    }
    let data: Partial<CacheFile>
    try {
      data = JSON.parse(text) as Partial<CacheFile>
    } catch {
      return ignore('not JSON (corrupt)')
    }
    if (!isPlainObject(data as unknown) || data.format !== FORMAT || data.version !== 1)
      return ignore('not an etcdkit config cache of version 1')
    const { namespace, prefix, service } = this.#ident
    if (data.namespace !== namespace || data.prefix !== prefix || data.service !== service)
      return ignore(
        `it belongs to namespace ${show(data.namespace)}, prefix ${show(data.prefix)}, service ${show(data.service)}`,
      )
    if (!isPlainObject(data.entries as unknown) || typeof data.revision !== 'string')
      return ignore('its entries are malformed')
    const entries = new Map<string, TreeEntry>()
    for (const [key, e] of Object.entries(data.entries as Record<string, unknown>)) {
      const entry = e as { text?: unknown; revision?: unknown; createRevision?: unknown; version?: unknown }
      if (
        !isPlainObject(e) ||
        typeof entry.text !== 'string' ||
        typeof entry.revision !== 'string' ||
        typeof entry.createRevision !== 'string' ||
        typeof entry.version !== 'number'
      )
        return ignore(`its entry ${show(key)} is malformed`)
      entries.set(key, {
        text: entry.text,
        utf8: true,
        revision: entry.revision,
        createRevision: entry.createRevision,
        version: entry.version,
      })
    }
    return { entries, revision: data.revision, savedAt: String(data.savedAt) }
  }

  /** Saves the mirror soon (changes in a burst are written once). */
  save(entries: Map<string, TreeEntry>, revision: string) {
    this.#pending = { entries: new Map(entries), revision }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      const pending = this.#pending
      this.#pending = undefined
      if (pending)
        this.#writing = this.#writing.then(() => this.#write(pending.entries, pending.revision, false))
    }, 20)
    this.#timer.unref()
  }

  /** Writes what is pending now, synchronously (the kit is closing). */
  flush() {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const pending = this.#pending
    this.#pending = undefined
    if (pending) void this.#write(pending.entries, pending.revision, true)
  }

  async #write(entries: Map<string, TreeEntry>, revision: string, sync: boolean): Promise<void> {
    const data: CacheFile = {
      format: FORMAT,
      version: 1,
      ...this.#ident,
      revision,
      savedAt: new Date().toISOString(),
      entries: Object.fromEntries(
        [...entries]
          .filter(([, e]) => e.utf8)
          .map(([key, e]) => [
            key,
            { text: e.text, revision: e.revision, createRevision: e.createRevision, version: e.version },
          ]),
      ),
    }
    const tmp = `${this.file}.${process.pid}.tmp`
    const dir = join(this.file, '..')
    try {
      if (sync) {
        mkdirSync(dir, { recursive: true })
        writeFileSync(tmp, JSON.stringify(data))
        renameSync(tmp, this.file)
      } else {
        await mkdir(dir, { recursive: true })
        await writeFile(tmp, JSON.stringify(data))
        await rename(tmp, this.file)
      }
    } catch (err) {
      this.#log.warn({ err, file: this.file }, 'could not write the config cache')
    }
  }
}

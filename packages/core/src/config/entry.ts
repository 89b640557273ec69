// A config key as the mirror keeps it: its own file so that the mirror (tree.ts) and its disk cache
// (cache.ts) both use it without importing each other.
import type { IKeyValue } from 'etcd3'

/**
 * A stored value: its text, whether its bytes were valid UTF-8, its mod revision, and where it stands in
 * its key's history (the create revision of this life of the key, and its version within that life).
 */
export interface TreeEntry {
  text: string
  utf8: boolean
  revision: string
  createRevision: string
  version: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A key-value as the mirror keeps it (also used for versions read from the key's history). */
export function decodeEntry(kv: IKeyValue): TreeEntry {
  const history = {
    revision: kv.mod_revision,
    createRevision: kv.create_revision,
    version: Number(kv.version),
  }
  try {
    return { text: utf8.decode(kv.value), utf8: true, ...history }
  } catch {
    return { text: kv.value.toString(), utf8: false, ...history }
  }
}

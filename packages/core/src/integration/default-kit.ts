import type { EtcdKit } from '../kit.js'

/**
 * The process's default kits, most recent last. Framework integrations put their kit here so that code
 * with no kit at hand (the decorators of @etcdkit/decorators) can find one without either package
 * depending on the other. A closed kit is skipped and dropped, so the default falls back to an earlier
 * kit that is still open.
 */
const kits: EtcdKit[] = defaultKits()

/**
 * The list lives on `globalThis` under a registered symbol: when both builds of this package are loaded in
 * one process (an ESM app whose dependency `require()`s @etcdkit/core, or Jest beside native ESM), they
 * share one default rather than each keeping its own.
 */
function defaultKits(): EtcdKit[] {
  const slot = Symbol.for('@etcdkit/core.defaultKits')
  const global = globalThis as Record<symbol, EtcdKit[] | undefined>
  global[slot] ??= []
  return global[slot]
}

/** Makes `kit` the default (moving it to the end if it was already there). */
export function setDefaultKit(kit: EtcdKit): void {
  const at = kits.indexOf(kit)
  if (at !== -1) kits.splice(at, 1)
  kits.push(kit)
}

/** Stops offering `kit` as the default (a closed kit stops on its own). */
export function clearDefaultKit(kit: EtcdKit): void {
  const at = kits.indexOf(kit)
  if (at !== -1) kits.splice(at, 1)
}

/** The most recently set default kit that is still open, or `undefined`. */
export function getDefaultKit(): EtcdKit | undefined {
  for (let i = kits.length - 1; i >= 0; i--) {
    const kit = kits[i]!
    if (!kit.closed) return kit
    kits.splice(i, 1)
  }
  return undefined
}

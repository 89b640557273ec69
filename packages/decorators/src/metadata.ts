import 'reflect-metadata'
import type { ConfigValueOptions } from '@etcdkit/core'

// Node 20 has no Symbol.metadata: TypeScript's standard-decorator output then passes no context.metadata,
// while esbuild's falls back to Symbol.for('Symbol.metadata'). The same fallback here gives both.
const symbols = Symbol as { metadata?: symbol }
symbols.metadata ??= Symbol.for('Symbol.metadata')
const metadataSymbol: symbol = symbols.metadata

/** What one decorator recorded about one member. */
export type Member =
  | { kind: 'lock'; member: string | symbol; name: string }
  | { kind: 'config'; member: string | symbol; key: string; options: ConfigValueOptions<unknown> }
  | {
      kind: 'change'
      member: string | symbol
      key: string
      options: ConfigValueOptions<unknown> | undefined
    }

/** The decorated members of a class, as a list on the class (legacy: its prototype; standard: its metadata). */
export const kMembers = Symbol('@etcdkit/decorators.members')
/** One member's record, on `(prototype, member)` (legacy mode). */
export const kMember = Symbol('@etcdkit/decorators.member')

/** The name of a member for messages: `Reports.run`. */
export function label(owner: unknown, member: string | symbol): string {
  return `${className(owner)}.${String(member)}`
}

/** The name of an instance's class (or of a class) for messages. */
export function className(owner: unknown): string {
  const cls = typeof owner === 'function' ? owner : (owner as { constructor?: unknown } | null)?.constructor
  return typeof cls === 'function' && cls.name ? cls.name : '(anonymous class)'
}

/** Legacy mode: records `record` on `(target, member)` and in the list of `target` (a prototype or a class). */
export function recordLegacy(target: object, record: Member) {
  // getMetadata walks the prototype chain: a subclass starts from its parent's list and adds its own
  const list = (Reflect.getMetadata(kMembers, target) as Member[] | undefined) ?? []
  Reflect.defineMetadata(kMembers, [...list, record], target)
  const own = (Reflect.getOwnMetadata(kMember, target, record.member) as Member[] | undefined) ?? []
  Reflect.defineMetadata(kMember, [...own, record], target, record.member)
}

/** Standard mode: records `record` in the class's `context.metadata` (when the runtime provides it). */
export function recordStandard(metadata: DecoratorMetadataObject | undefined, record: Member) {
  if (!metadata) return
  // metadata objects inherit from the parent class's: copy, never push into the parent's list
  const list = (metadata[kMembers] as Member[] | undefined) ?? []
  metadata[kMembers] = [...list, record]
}

/** The members recorded for `target` (an instance or a class) in legacy mode. */
export function legacyMembers(target: object): readonly Member[] {
  const holder = typeof target === 'function' ? target : Object.getPrototypeOf(target)
  if (holder === null) return []
  return (Reflect.getMetadata(kMembers, holder) as Member[] | undefined) ?? []
}

/**
 * The members `@WithLock`, `@Config` and `@OnConfigChange` recorded on a class (or an instance's class),
 * in either decorator mode: for tools that list what a class does with etcd.
 */
export function decoratedMembers(target: object): readonly Member[] {
  const cls = typeof target === 'function' ? target : (target as { constructor: unknown }).constructor
  const metadata =
    typeof cls === 'function'
      ? (cls as unknown as Record<symbol, DecoratorMetadataObject | null | undefined>)[metadataSymbol]
      : undefined
  const fromMetadata = metadata?.[kMembers] as Member[] | undefined
  const legacy =
    typeof target === 'function'
      ? [...legacyMembers(Object.create(target.prototype as object) as object), ...legacyMembers(target)]
      : legacyMembers(target)
  return [...legacy, ...(fromMetadata ?? [])]
}

/**
 * Copies what other decorators stored on a method's function object (reflect-metadata and own properties)
 * to the function that replaces it, so wrapping does not lose it.
 */
export function copyFunctionMetadata(from: Function, to: Function) {
  for (const key of Reflect.getOwnMetadataKeys(from) as unknown[])
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, from), to)
  for (const key of Reflect.ownKeys(from)) {
    if (key === 'length' || key === 'name' || key === 'prototype' || key === 'arguments' || key === 'caller')
      continue
    const descriptor = Object.getOwnPropertyDescriptor(from, key)
    if (descriptor) Object.defineProperty(to, key, descriptor)
  }
  Object.defineProperty(to, 'name', { value: from.name, configurable: true })
  Object.defineProperty(to, 'length', { value: from.length, configurable: true })
}

/** Whether a decorator was called in standard (TC39) form: `(value, context)`. */
export function isStandardContext(context: unknown): context is DecoratorContext {
  return typeof context === 'object' && context !== null && 'kind' in context && 'name' in context
}

// The dialects by name, and the two bound forms the registry and the readers use (no dialect code elsewhere).

import { InvalidArgumentError, show } from '../../errors.js'
import { isPlainObject } from '../../validate.js'
import {
  DIALECT_NAMES,
  type DialectCodec,
  type DialectContext,
  type DialectDecoded,
  type DialectInstance,
  type DialectName,
  type DialectPurpose,
} from './dialect.js'
import { etcdDialect } from './etcd.js'
import { goMicroDialect } from './go-micro.js'
import { goZeroDialect } from './go-zero.js'
import { hertzDialect } from './hertz.js'
import { kitexDialect } from './kitex.js'
import type { KratosScheme } from './kratos.js'
import { kratosDialect } from './kratos.js'

export type {
  DialectContext,
  DialectDecoded,
  DialectInstance,
  DialectName,
  DialectPurpose,
} from './dialect.js'
export { DIALECT_NAMES } from './dialect.js'
export type { KratosScheme } from './kratos.js'

// biome-ignore lint/suspicious/noExplicitAny: each codec has its own option types; they meet only through bind*()
const CODECS: Record<DialectName, DialectCodec<any, any>> = {
  etcd: etcdDialect,
  'go-zero': goZeroDialect,
  kratos: kratosDialect,
  kitex: kitexDialect,
  hertz: hertzDialect,
  'go-micro': goMicroDialect,
}

/** How to write an instance in one dialect: its name, or its name with that dialect's options. */
export type DialectWriteSpec =
  | DialectName
  | { name: 'etcd' }
  | {
      name: 'go-zero'
      /** go-zero's `Etcd.Key`. @default `{service}.rpc` (what goctl generates) */
      key?: string
      /** go-zero's `Etcd.ID`: the key becomes `{key}/{id}` instead of `{key}/{lease ID}`. */
      id?: bigint | number | string
    }
  | {
      name: 'kratos'
      /** Kratos' `Namespace` option. @default '/microservices' */
      namespace?: string
      /** The instance ID (Kratos' `kratos.ID`). @default the address */
      id?: string
      /** One endpoint per scheme, all at the registered address. @default from `metadata.protocol`, else `http` */
      schemes?: KratosScheme[]
    }
  | {
      name: 'kitex'
      /** kitex-contrib's `WithPrefix`. @default 'kitex/registry-etcd' */
      prefix?: string
      /** Tags besides those made from the metadata. */
      tags?: Record<string, string>
    }
  | { name: 'hertz'; tags?: Record<string, string> }
  | {
      name: 'go-micro'
      /** The node ID. @default `{service}-{address}` */
      id?: string
    }

/** How to read one dialect: its name, or its name with that dialect's read options. */
export type DialectReadSpec =
  | DialectName
  | { name: 'etcd' }
  | { name: 'go-zero' /** @default `{service}.rpc` */; key?: string }
  | {
      name: 'kratos'
      /** @default '/microservices' */
      namespace?: string
      /** The endpoint scheme to use. @default what the reader calls: `http`/`https` for `kit.service()`, `grpc`/`grpcs` for the gRPC resolver, else the first endpoint */
      scheme?: KratosScheme
    }
  | { name: 'kitex' /** @default 'kitex/registry-etcd' */; prefix?: string }
  | { name: 'hertz' }
  | { name: 'go-micro' }

/** An instance bound to one dialect: what the registry writes, and whether the key follows the lease. */
export interface DialectWriter {
  readonly dialect: DialectName
  readonly keyHasLease: boolean
  /** How to give a second registration keys of its own, for the error refusing a clash. */
  readonly distinct: string
  key(leaseId: string): string
  readonly value: string
}

/** A service bound to one dialect: the prefix to read, and how to read each value under it. */
export interface DialectReader {
  readonly dialect: DialectName
  readonly service: string
  /** Equal for two readers that read the same values the same way (views are shared by it). */
  readonly id: string
  readonly prefix: string
  decode(key: string, value: string): DialectDecoded
}

function split(
  spec: unknown,
  what: string,
): { codec: DialectCodec<unknown, unknown>; raw: Record<string, unknown> } {
  const raw = typeof spec === 'string' ? { name: spec } : spec
  if (!isPlainObject(raw) || typeof raw.name !== 'string' || !(DIALECT_NAMES as string[]).includes(raw.name))
    throw new InvalidArgumentError(
      `invalid ${what} ${show(spec)}: expected one of ${DIALECT_NAMES.map((n) => `"${n}"`).join(', ')}, or { name, ...options }`,
    )
  return { codec: CODECS[raw.name as DialectName], raw }
}

/** Checks a write spec and binds it to the instance (throws `InvalidArgumentError` naming the bad value). */
export function bindWriter(spec: unknown, instance: DialectInstance, ctx: DialectContext): DialectWriter {
  const { codec, raw } = split(spec, 'dialect')
  const options = codec.writeOptions(raw, instance)
  return {
    dialect: codec.name,
    keyHasLease: codec.keyHasLease(options),
    distinct: codec.distinct,
    key: (leaseId) => codec.key(instance, options, leaseId, ctx),
    value: codec.encode(instance, options),
  }
}

/**
 * Checks a registration's list of dialects (default `['etcd']`: not empty, no dialect twice, each spec
 * valid) and binds each to the instance.
 */
export function bindWriters(
  dialects: unknown,
  instance: DialectInstance,
  ctx: DialectContext,
): DialectWriter[] {
  if (dialects === undefined) dialects = ['etcd']
  if (!Array.isArray(dialects) || dialects.length === 0)
    throw new InvalidArgumentError(
      `invalid register dialects ${show(dialects)}: expected a non-empty list such as ["etcd", "go-zero"]`,
    )
  const writers = dialects.map((spec) => bindWriter(spec, instance, ctx))
  const names = writers.map((w) => w.dialect)
  const twice = names.find((n, i) => names.indexOf(n) !== i)
  if (twice !== undefined)
    throw new InvalidArgumentError(
      `invalid register dialects ${show(dialects)}: ${show(twice)} is given twice`,
    )
  return writers
}

/** Checks a read spec (default `etcd`) and binds it to the service. */
export function bindReader(
  spec: unknown,
  service: string,
  ctx: DialectContext,
  purpose: DialectPurpose = 'any',
): DialectReader {
  const { codec, raw } = split(spec ?? 'etcd', 'dialect')
  const options = codec.readOptions(raw, service, purpose)
  return {
    dialect: codec.name,
    service,
    id: JSON.stringify([codec.name, service, options ?? null]),
    prefix: codec.prefix(service, options, ctx),
    decode: (key, value) => {
      try {
        return codec.decode(service, key, value, options)
      } catch (err) {
        // a codec must not throw on data; should one, the value is reported, never the view broken
        return { kind: 'unreadable', reason: `unreadable: ${(err as Error).message}` }
      }
    },
  }
}

/** Every service of one dialect: the root its keys are under, and a reader per service found there. */
export interface DialectCatalog {
  readonly dialect: DialectName
  readonly root: string
  /** The service a key under the root names (the key without the root), or `undefined`. */
  serviceOf(keyUnderRoot: string): string | undefined
  /** A reader for one service found (with the dialect's default read options). */
  reader(service: string): DialectReader
}

/**
 * Binds a dialect for a catalog of all its services (default `etcd`), or of `service` only (its reader's
 * prefix is the root); throws `InvalidArgumentError` for a catalog of all services of a dialect whose keys
 * have no common root (go-zero: each service has a free Key).
 */
export function bindCatalog(spec: unknown, ctx: DialectContext, service?: string): DialectCatalog {
  const { codec, raw } = split(spec ?? 'etcd', 'dialect')
  if (Object.keys(raw).length > 1)
    throw new InvalidArgumentError(
      `invalid catalog dialect ${show(spec)}: a catalog takes a dialect name only`,
    )
  if (service !== undefined) {
    const one = bindReader(codec.name, service, ctx)
    return { dialect: codec.name, root: one.prefix, serviceOf: () => service, reader: () => one }
  }
  const catalog = codec.catalog(ctx)
  if (catalog === undefined)
    throw new InvalidArgumentError(
      `the ${codec.name} dialect keeps services under keys of their own: read one with discover(service, { dialect: ${show(codec.name)} })`,
    )
  const readers = new Map<string, DialectReader>()
  return {
    dialect: codec.name,
    root: catalog.root,
    serviceOf: catalog.serviceOf,
    reader(service) {
      let r = readers.get(service)
      if (r === undefined) {
        r = bindReader(codec.name, service, ctx)
        readers.set(service, r)
      }
      return r
    },
  }
}

/** The codec of a dialect, for tools that describe dialects (the matrix in docs/POLYGLOT.md, the CLI). */
export function dialectCodec(name: DialectName): DialectCodec<unknown, unknown> {
  return CODECS[name]
}

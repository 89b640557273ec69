import { EtcdKit, type EtcdKitOptions, silentLogger } from '@etcdkit/core'
import { sharedEtcd, uniquePrefix } from '@etcdkit/testing'

/** The run's etcd (ETCD_ENDPOINTS) or one started for this test file. */
export const etcd = sharedEtcd

/** `count` kits sharing one new namespace: the "instances" of one service. */
export async function kits(count: number, options: EtcdKitOptions = {}): Promise<EtcdKit[]> {
  const { endpoints } = await etcd()
  const namespace = uniquePrefix('deco')
  return Array.from(
    { length: count },
    () => new EtcdKit({ endpoints, namespace, logger: silentLogger, ...options }),
  )
}

export { eventually } from '@etcdkit/testing'

const kTag = Symbol('test.tag')

/**
 * Another library's decorator, in either mode: it records a tag on (prototype, member) (legacy) or in the
 * class metadata (standard), and on the method's function object, as reflect-metadata users do.
 */
export function Tag(value: string) {
  return (target: unknown, context: unknown, descriptor?: PropertyDescriptor): void => {
    if (typeof context === 'object' && context !== null && 'kind' in context) {
      const ctx = context as ClassMethodDecoratorContext
      const metadata = ctx.metadata as DecoratorMetadataObject | undefined
      if (metadata) metadata[kTag] = { ...(metadata[kTag] as object | undefined), [ctx.name]: value }
      Reflect.defineMetadata(kTag, value, target as object)
      return
    }
    Reflect.defineMetadata(kTag, value, target as object, context as string)
    if (descriptor && typeof descriptor.value === 'function')
      Reflect.defineMetadata(kTag, value, descriptor.value)
  }
}

const metadataSymbol = (Symbol as { metadata?: symbol }).metadata ?? Symbol.for('Symbol.metadata')

/** The tag `Tag` recorded for `member` of `cls`, in either mode. */
export function readTag(cls: Function, member: string): string | undefined {
  const legacy = Reflect.getMetadata(kTag, cls.prototype as object, member) as string | undefined
  const metadata = (cls as unknown as Record<symbol, Record<symbol, Record<string, string>> | undefined>)[
    metadataSymbol
  ]
  return legacy ?? metadata?.[kTag]?.[member]
}

/** The tag `Tag` put on a function object. */
export function functionTag(fn: unknown): string | undefined {
  return Reflect.getMetadata(kTag, fn as object) as string | undefined
}

import {
  type ConfigSchemaOptions,
  type ConfigValueOptions,
  InvalidArgumentError,
  type StandardSchemaV1,
} from '@etcdkit/core'
import { checkConfigKey, checkValueOptions } from '@etcdkit/core/integration'
import { readConfig, readOnly, registerMember } from './binding.js'
import { isStandardContext, type Member, recordLegacy, recordStandard } from './metadata.js'

/** Applies to a property (a class field, or a standard `accessor`) in either decorator mode. */
export interface ConfigDecorator {
  /** Standard (TC39) decorators, on a field. */
  <This, V>(target: undefined, context: ClassFieldDecoratorContext<This, V>): void
  /** Standard decorators, on an `accessor`. */
  <This, V>(
    target: ClassAccessorDecoratorTarget<This, V>,
    context: ClassAccessorDecoratorContext<This, V>,
  ): ClassAccessorDecoratorResult<This, V>
  /** `experimentalDecorators`. */
  (target: object, member: string | symbol): void
}

/** Applies to a method in either decorator mode. */
export interface OnConfigChangeDecorator {
  /** Standard (TC39) decorators. */
  <This>(target: Function, context: ClassMethodDecoratorContext<This>): void
  /** `experimentalDecorators`. */
  (target: object, member: string | symbol, descriptor: PropertyDescriptor): void
}

function checkOptions(decorator: string, options: unknown): ConfigValueOptions<unknown> {
  if (options === undefined) return {}
  checkValueOptions(options, decorator)
  return options as ConfigValueOptions<unknown>
}

const isTarget = (value: unknown): value is object =>
  (typeof value === 'object' && value !== null) || typeof value === 'function'

/**
 * A property whose value is the live configuration value `key` (`kit.config.value(key, options)`:
 * `{configPrefix}{service}/{key}` over `{configPrefix}{key}`, else `default`). Reading it is a property
 * read: the last good value, no I/O; text that `parse` or `validate` refuses leaves it as it was. The
 * property cannot be assigned, and takes no initializer (use `default`). The kit is the one bound to the
 * instance (`bindEtcdKit`) or the default kit.
 */
export function Config<S extends StandardSchemaV1>(
  key: string,
  options: ConfigSchemaOptions<S>,
): ConfigDecorator
export function Config<T = string>(key: string, options?: ConfigValueOptions<T>): ConfigDecorator
/**
 * With `schema` (a Standard Schema: zod, valibot, arktype, ...), the value is the schema's output and a
 * value it refuses is reported (with its issues) and leaves the property as it was.
 */
export function Config<T = string>(
  key: string,
  options?: ConfigValueOptions<T> | ConfigSchemaOptions<StandardSchemaV1>,
): ConfigDecorator {
  const decorator = `@Config(${JSON.stringify(key)})`
  checkConfigKey(key, `${decorator} key`)
  const valueOptions = checkOptions(decorator, options)
  const apply = (target: unknown, context: unknown): unknown => {
    if (isStandardContext(context)) {
      if (context.kind !== 'field' && context.kind !== 'accessor')
        throw new InvalidArgumentError(
          `${decorator} applies to fields and accessors, not to a ${context.kind}`,
        )
      if (context.static)
        throw new InvalidArgumentError(`${decorator} applies to instance fields, not static ones`)
      const record: Member = { kind: 'config', member: context.name, key, options: valueOptions }
      recordStandard(context.metadata, record)
      // runs once the field is defined on the new instance: it becomes the live getter there
      context.addInitializer(function (this: unknown) {
        if (isTarget(this)) registerMember(this, record)
      })
      if (context.kind === 'accessor') {
        return {
          get(this: object) {
            return readConfig(this, record)
          },
          set(this: object) {
            throw readOnly(this, record)
          },
          init(this: object, value: unknown) {
            if (value !== undefined) throw readOnly(this, record)
            return value
          },
        }
      }
      return undefined
    }
    if (!isTarget(target) || typeof target === 'function')
      throw new InvalidArgumentError(`${decorator} applies to instance properties`)
    const member = context as string | symbol
    const record = { kind: 'config', member, key, options: valueOptions } as const
    recordLegacy(target, record)
    // with `useDefineForClassFields: false` this getter is what reads hit until the instance gets its own
    Object.defineProperty(target, member, {
      get(this: object) {
        return readConfig(this, record)
      },
      set(this: object) {
        throw readOnly(this, record)
      },
      enumerable: false,
      configurable: true,
    })
    return undefined
  }
  return apply as ConfigDecorator
}

/**
 * Calls the method (with the instance as `this`) with the new value of configuration key `key` and a
 * `ConfigChange` ({ key, text, revision }) whenever the value in force changes, including when the first
 * read from etcd replaces the default. Without options it receives the value as the instance's `@Config`
 * property of the same key parses it (text when there is none). Calls start when the instance is bound:
 * `bindEtcdKit(instance[, kit])`, or the first use of one of its decorated members. A handler that throws
 * or rejects is logged through the kit's logger.
 */
export function OnConfigChange<S extends StandardSchemaV1>(
  key: string,
  options: ConfigSchemaOptions<S>,
): OnConfigChangeDecorator
export function OnConfigChange<T = string>(
  key: string,
  options?: ConfigValueOptions<T>,
): OnConfigChangeDecorator
export function OnConfigChange<T = string>(
  key: string,
  options?: ConfigValueOptions<T> | ConfigSchemaOptions<StandardSchemaV1>,
): OnConfigChangeDecorator {
  const decorator = `@OnConfigChange(${JSON.stringify(key)})`
  checkConfigKey(key, `${decorator} key`)
  const valueOptions = options === undefined ? undefined : checkOptions(decorator, options)
  const apply = (target: unknown, context: unknown, descriptor?: PropertyDescriptor): void => {
    if (isStandardContext(context)) {
      if (context.kind !== 'method')
        throw new InvalidArgumentError(`${decorator} applies to methods, not to a ${context.kind}`)
      if (context.static)
        throw new InvalidArgumentError(`${decorator} applies to instance methods, not static ones`)
      const record: Member = { kind: 'change', member: context.name, key, options: valueOptions }
      recordStandard(context.metadata, record)
      context.addInitializer(function (this: unknown) {
        if (isTarget(this)) registerMember(this, record)
      })
      return
    }
    const member = context as string | symbol
    if (!isTarget(target) || typeof target === 'function' || typeof descriptor?.value !== 'function')
      throw new InvalidArgumentError(`${decorator} applies to instance methods: ${String(member)} is not one`)
    recordLegacy(target, { kind: 'change', member, key, options: valueOptions })
  }
  return apply as OnConfigChangeDecorator
}

// What EtcdKitModule takes, the tokens it provides them under, and the checks made before anything starts.
import { type EtcdKitOptions, InvalidArgumentError } from '@etcdkit/core'
import {
  checkKitOptions,
  checkServerRegistrationOptions,
  type ServerRegistrationOptions,
  show,
} from '@etcdkit/core/integration'
import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common'

/** The module's options, as given to `forRoot` or returned by `forRootAsync`'s factory. */
export const ETCDKIT_MODULE_OPTIONS = Symbol.for('@etcdkit/nestjs.options')

/**
 * Registration of this app's HTTP server in etcd: the lifecycle options of @etcdkit/fastify and
 * @etcdkit/express (see `ServerRegistrationOptions` in @etcdkit/core/integration).
 */
export type EtcdKitRegisterOptions = Pick<
  ServerRegistrationOptions,
  | 'service'
  | 'metadata'
  | 'dialects'
  | 'advertise'
  | 'drainDelay'
  | 'closeTimeout'
  | 'registerTimeout'
  | 'registerInBackground'
>

/** How module init waits for the first read of the `@Config` values. */
export interface ConfigReadyOptions {
  /**
   * How long module init waits for etcd's values of every `@Config` property, in ms. After it the app
   * starts with the defaults (a warning names the keys), or fails if `required`. @default 5_000
   */
  timeout?: number
  /** Whether startup fails (`ETCDKIT_ETCD_UNAVAILABLE`) when the values are not read in time. @default false */
  required?: boolean
}

/** The kit's own options (`EtcdKitOptions`), plus what the module does with it. */
export interface EtcdKitModuleOptions extends EtcdKitOptions {
  /**
   * Register the app in etcd when it listens (`await app.listen()` resolves once the key is written), and
   * deregister it before the HTTP server stops taking requests on shutdown. The kit's `service` defaults
   * to `register.service`. @default undefined: no registration
   */
  register?: EtcdKitRegisterOptions
  /** Waiting for `@Config` values at module init. @default { timeout: 5_000, required: false } */
  configReady?: ConfigReadyOptions
}

/** `forRootAsync`: the options come from a factory, with Nest's injection. */
export interface EtcdKitModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Providers the factory is given, in order. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>
  useFactory: (...args: never[]) => EtcdKitModuleOptions | Promise<EtcdKitModuleOptions>
  /** Whether the kit is injectable in every module without importing this one. @default true */
  global?: boolean
  /** `global`, as @nestjs/config spells it (give one of the two). */
  isGlobal?: boolean
}

/** `forRoot`'s extra option: whether the module is global. */
export interface EtcdKitModuleRootOptions extends EtcdKitModuleOptions {
  /** Whether the kit is injectable in every module without importing this one. @default true */
  global?: boolean
  /** `global`, as @nestjs/config spells it (give one of the two). */
  isGlobal?: boolean
}

export const NAME = '@etcdkit/nestjs'

/** `global` (or `isGlobal`, as @nestjs/config spells it): a boolean, true when neither is given. */
export function checkGlobal(options: { global?: unknown; isGlobal?: unknown }): boolean {
  const { global, isGlobal } = options
  for (const [what, value] of [
    ['global', global],
    ['isGlobal', isGlobal],
  ] as const)
    if (value !== undefined && typeof value !== 'boolean')
      throw new InvalidArgumentError(`${NAME}: invalid ${what} ${show(value)}: expected a boolean`)
  if (global !== undefined && isGlobal !== undefined && global !== isGlobal)
    throw new InvalidArgumentError(
      `${NAME}: global ${show(global)} and isGlobal ${show(isGlobal)} disagree: give one (isGlobal is global as @nestjs/config spells it)`,
    )
  return (global ?? isGlobal ?? true) as boolean
}

const REGISTER_KEYS = new Set([
  'service',
  'metadata',
  'dialects',
  'advertise',
  'drainDelay',
  'closeTimeout',
  'registerTimeout',
  'registerInBackground',
])

/** Runs a check of core's; its error is rethrown with this package's name in front. */
function prefixed(check: () => unknown): void {
  try {
    check()
  } catch (err) {
    if (err instanceof InvalidArgumentError && !err.message.includes(NAME))
      throw new InvalidArgumentError(`${NAME}: ${err.message}`)
    throw err
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** The options once checked, with `configReady`'s defaults filled in. */
export type CheckedModuleOptions = EtcdKitModuleOptions & { configReady: Required<ConfigReadyOptions> }

/**
 * The options with `configReady` filled in; throws naming what is wrong. Every kit and register option is
 * checked here, by core's own checks, so a bad one fails `forRoot` (or the async factory), not
 * `NestFactory.create`.
 */
export function checkModuleOptions(options: unknown): CheckedModuleOptions {
  if (!isObject(options))
    throw new InvalidArgumentError(`${NAME}: invalid options ${String(options)}: expected an object`)
  for (const key of ['global', 'isGlobal'])
    if (key in options)
      throw new InvalidArgumentError(
        `${NAME}: ${key} goes in forRootAsync's own options ({ ${key}, useFactory }), not in what the factory returns`,
      )
  const { register, configReady = {}, ...kitOptions } = options as EtcdKitModuleOptions
  if (register !== undefined) {
    if (!isObject(register))
      throw new InvalidArgumentError(`${NAME}: invalid register ${String(register)}: expected an object`)
    for (const key of Object.keys(register))
      if (!REGISTER_KEYS.has(key))
        throw new InvalidArgumentError(
          `${NAME}: unknown register option ${JSON.stringify(key)} (known: ${[...REGISTER_KEYS].join(', ')})`,
        )
    prefixed(() => checkServerRegistrationOptions(register, `${NAME} register`))
  }
  // the kit's service defaults to register.service, as createKit does
  prefixed(() =>
    checkKitOptions({ ...(register ? { service: register.service } : {}), ...kitOptions } as EtcdKitOptions),
  )
  if (!isObject(configReady))
    throw new InvalidArgumentError(
      `${NAME}: invalid configReady ${String(configReady)}: expected { timeout?, required? }`,
    )
  const { timeout = 5_000, required = false } = configReady
  if (!(typeof timeout === 'number' && timeout > 0 && timeout <= 2 ** 31 - 1))
    throw new InvalidArgumentError(
      `${NAME}: invalid configReady.timeout ${String(timeout)}: expected milliseconds in (0, 2^31 - 1]`,
    )
  if (typeof required !== 'boolean')
    throw new InvalidArgumentError(
      `${NAME}: invalid configReady.required ${String(required)}: expected a boolean`,
    )
  return { ...(options as EtcdKitModuleOptions), configReady: { timeout, required } }
}

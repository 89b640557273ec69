// EtcdKitModule: the kit as a provider, the explorer, the registration lifecycle and the health indicator.
import { EtcdKit } from '@etcdkit/core'
import { setDefaultKit } from '@etcdkit/core/integration'
import { type DynamicModule, Module, type Provider } from '@nestjs/common'
import { DiscoveryModule, DiscoveryService, HttpAdapterHost, ModulesContainer } from '@nestjs/core'
import { EtcdKitExplorer } from './explorer.js'
import { EtcdKitHealthIndicator } from './health.js'
import { runHooksFirstAndLast } from './hook-order.js'
import { EtcdKitLifecycle } from './lifecycle.js'
import { nestLogger } from './logger.js'
import {
  type CheckedModuleOptions,
  checkGlobal,
  checkModuleOptions,
  ETCDKIT_MODULE_OPTIONS,
  type EtcdKitModuleAsyncOptions,
  type EtcdKitModuleOptions,
  type EtcdKitModuleRootOptions,
} from './options.js'

function createKit(options: EtcdKitModuleOptions): EtcdKit {
  const { register, configReady: _configReady, ...kitOptions } = options
  const kit = new EtcdKit({
    logger: nestLogger(),
    ...(register ? { service: register.service } : {}),
    ...kitOptions,
  })
  // code with no kit at hand (classes Nest does not create) uses this one while it is open
  setDefaultKit(kit)
  return kit
}

const HOOK_ORDER = Symbol('@etcdkit/nestjs.hookOrder')

// Factory providers with explicit `inject`: no constructor parameter decorators and no design-time type
// metadata, so this package works whatever the app's compiler (tsc, SWC, esbuild) and decorator mode.
const common: Provider[] = [
  {
    provide: HOOK_ORDER,
    useFactory: (modules: ModulesContainer) => runHooksFirstAndLast(modules, EtcdKitModule),
    inject: [ModulesContainer],
  },
  { provide: EtcdKit, useFactory: createKit, inject: [ETCDKIT_MODULE_OPTIONS] },
  {
    provide: EtcdKitExplorer,
    useFactory: (discovery: DiscoveryService, kit: EtcdKit, options: CheckedModuleOptions) =>
      new EtcdKitExplorer(discovery, kit, options),
    inject: [DiscoveryService, EtcdKit, ETCDKIT_MODULE_OPTIONS],
  },
  {
    provide: EtcdKitLifecycle,
    useFactory: (host: HttpAdapterHost, kit: EtcdKit, options: CheckedModuleOptions) =>
      new EtcdKitLifecycle(host, kit, options),
    inject: [HttpAdapterHost, EtcdKit, ETCDKIT_MODULE_OPTIONS],
  },
  {
    provide: EtcdKitHealthIndicator,
    useFactory: (kit: EtcdKit, lifecycle: EtcdKitLifecycle, explorer: EtcdKitExplorer) =>
      new EtcdKitHealthIndicator(kit, lifecycle, explorer),
    inject: [EtcdKit, EtcdKitLifecycle, EtcdKitExplorer],
  },
]

const exported = [EtcdKit, EtcdKitHealthIndicator, ETCDKIT_MODULE_OPTIONS]

/**
 * `EtcdKitModule.forRoot({ endpoints, register: { service: 'orders' } })`: one `EtcdKit` for the app,
 * injectable by class; every provider and controller using `@WithLock`, `@Config` or `@OnConfigChange`
 * bound to it; `@Config` values read before other modules' `onModuleInit`; the app registered in etcd
 * when it listens and deregistered before its HTTP server closes. Global unless `global: false` (or
 * `isGlobal: false`, as @nestjs/config spells it). Every option is checked here: a bad one throws
 * `ETCDKIT_INVALID_ARGUMENT` from `forRoot`.
 */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: a Nest module is a class; forRoot/forRootAsync are its API
export class EtcdKitModule {
  static forRoot(options: EtcdKitModuleRootOptions = {}): DynamicModule {
    const { global: _global, isGlobal: _isGlobal, ...rest } = options
    const global = checkGlobal(options)
    const checked = checkModuleOptions(rest)
    return {
      module: EtcdKitModule,
      global,
      imports: [DiscoveryModule],
      providers: [{ provide: ETCDKIT_MODULE_OPTIONS, useValue: checked }, ...common],
      exports: exported,
    }
  }

  static forRootAsync(options: EtcdKitModuleAsyncOptions): DynamicModule {
    const { imports = [], inject = [], useFactory } = options
    const global = checkGlobal(options)
    return {
      module: EtcdKitModule,
      global,
      imports: [DiscoveryModule, ...imports],
      providers: [
        {
          provide: ETCDKIT_MODULE_OPTIONS,
          useFactory: async (...args: never[]) => checkModuleOptions(await useFactory(...args)),
          inject,
        },
        ...common,
      ],
      exports: exported,
    }
  }
}

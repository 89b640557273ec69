export { EtcdKitExplorer } from './explorer.js'
export { type EtcdKitHealthDetails, EtcdKitHealthIndicator, type EtcdKitHealthResult } from './health.js'
export { EtcdKitLifecycle } from './lifecycle.js'
export { nestLogger } from './logger.js'
export { EtcdKitModule } from './module.js'
export {
  type ConfigReadyOptions,
  ETCDKIT_MODULE_OPTIONS,
  type EtcdKitModuleAsyncOptions,
  type EtcdKitModuleOptions,
  type EtcdKitModuleRootOptions,
  type EtcdKitRegisterOptions,
} from './options.js'

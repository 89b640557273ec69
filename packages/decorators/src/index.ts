export { bindEtcdKit, type ConfigReadyOptions, configReady, unbindEtcdKit } from './binding.js'
export { Config, type ConfigDecorator, OnConfigChange, type OnConfigChangeDecorator } from './config.js'
export { decoratedMembers, type Member } from './metadata.js'
export {
  currentLock,
  type LockedMethod,
  WithLock,
  type WithLockDecorator,
  type WithLockOptions,
} from './with-lock.js'

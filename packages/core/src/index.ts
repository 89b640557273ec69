export { Discovery, type DiscoveryEvents, type InvalidEntry } from './discovery.js'
export {
  ClosedError,
  EtcdKitError,
  type EtcdKitErrorCode,
  EtcdUnavailableError,
  InvalidArgumentError,
  SessionLostError,
} from './errors.js'
export type { Instance, InstanceMetadata } from './instance.js'
export { EtcdKit, type EtcdKitOptions } from './kit.js'
export {
  advertisedAddress,
  ConnectionDrain,
  type DrainableServer,
  formatAddress,
  hostAddress,
  ServerRegistration,
  type ServerRegistrationContext,
  type ServerRegistrationOptions,
} from './lifecycle.js'
export { defaultLogger, type Logger, silentLogger } from './logger.js'
export type { RegisterOptions, Registration } from './registry.js'
export type { Lease, Session, SessionEvents, SessionState } from './session.js'

export { SmoothWeightedRoundRobin } from './balancer.js'
export { Catalog, type CatalogEvents, type CatalogInstance } from './catalog.js'
export { Config, type ConfigKeyOptions } from './config.js'
export type { ConfigEvent } from './config-tree.js'
export {
  type ConfigChange,
  ConfigValue,
  type ConfigValueEvents,
  type ConfigValueOptions,
} from './config-value.js'
export { ConfigWatch, type ConfigWatchEvents } from './config-watch.js'
export { clearDefaultKit, getDefaultKit, setDefaultKit } from './default-kit.js'
export { Discovery, type DiscoveryEvents, type InvalidEntry } from './discovery.js'
export {
  type CampaignOptions,
  Election,
  ElectionObserver,
  type ElectionObserverEvents,
  type Leader,
  type Leadership,
} from './election.js'
export {
  AllEndpointsOpenError,
  AlreadyCampaigningError,
  AuthFailedError,
  ClosedError,
  EtcdCallError,
  EtcdKitError,
  type EtcdKitErrorCode,
  EtcdUnavailableError,
  InvalidArgumentError,
  InvalidConfigValueError,
  LockLostError,
  LockReleasedError,
  LockTimeoutError,
  NoEtcdKitError,
  NoInstancesError,
  NotLeaderError,
  NotLockOwnerError,
  PermissionDeniedError,
  RequestFailedError,
  RetriesExhaustedError,
  SessionLostError,
  TooLargeError,
} from './errors.js'
export type { AuthOptions, PemInput, TlsOptions } from './etcd-options.js'
export {
  type HealthSnapshot,
  healthResponse,
  type RegistrationHealth,
  type ViewHealth,
} from './health.js'
export type { QueueEntry } from './holders.js'
export type { Instance, InstanceMetadata } from './instance.js'
export { EtcdKit, type EtcdKitEvents, type EtcdKitOptions } from './kit.js'
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
export { type AcquireOptions, type GuardedWrites, type HeldLock, Lock } from './lock.js'
export type { OwnQueueState } from './lock-activity.js'
export { defaultLogger, type Logger, silentLogger } from './logger.js'
export type { RegisterOptions, Registration } from './registry.js'
export {
  type BreakerEvent,
  type BreakerOptions,
  type BreakerState,
  type EndpointStats,
  ServiceClient,
  type ServiceClientEvents,
  type ServiceClientOptions,
  type ServiceRequestOptions,
} from './service-client.js'
export type { Lease, Session, SessionEvents, SessionState } from './session.js'
export { parseSessionRecord, SESSIONS_PREFIX, type SessionRecord } from './session-record.js'
export { checkAddress, checkConfigKey, checkLockName, checkServiceName } from './validate.js'
